"""The code location: everything under segpipe/defs, one folder per domain."""

import warnings
from pathlib import Path

import dagster as dg
from dagster._record import copy


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    # Each asset links to the file and line that defines it (the UI's code references).
    with warnings.catch_warnings():  # code references are a beta API; the warning says only that
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = dg.with_source_code_references(list(loaded.assets or []))
    loaded = copy(loaded, assets=assets)
    # One process per run: every step talks to the same single-writer DuckDB file, and forking a
    # process per step would cost more than most steps do.
    return dg.Definitions.merge(loaded, dg.Definitions(executor=dg.in_process_executor))
