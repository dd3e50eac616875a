"""The code location: everything under segpipe/defs, one folder per domain."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    # One process per run: every step talks to the same single-writer DuckDB file, and forking a
    # process per step would cost more than most steps do.
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),
    )
