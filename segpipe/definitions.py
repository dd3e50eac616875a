"""The code location: everything under segpipe/defs, one folder per domain, bound to one
deployment's data directory.

This module and the command line are the only places that read SEGPIPE_DATA_DIR: `dagster dev`
and the daemon load `defs` (the environment's data directory); `segpipe run` builds its
definitions from the DataDir it was given (`build_definitions`).
"""

import warnings
from functools import cache
from pathlib import Path

import dagster as dg
from dagster._record import copy

from segpipe.config import DataDir, data_dir_from_env
from segpipe.defs.resources import build_resources


def build_definitions(data: DataDir) -> dg.Definitions:
    """Every asset, check, job, sensor and schedule of segpipe/defs, with the `data_dir` and
    `warehouse` resources of `data` (its folders created once, here)."""
    loaded = copy(_defs_folder(), resources=build_resources(data.ensure()))
    # One process per run: every step talks to the same single-writer DuckDB file, and forking a
    # process per step would cost more than most steps do.
    return dg.Definitions.merge(loaded, dg.Definitions(executor=dg.in_process_executor))


@cache
def _defs_folder() -> dg.Definitions:
    """segpipe/defs as loaded, without resources: the same for every deployment (its modules
    are imported once per process anyway), so a process that runs several deployments, or one
    several times, walks the folder once."""
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    # Each asset links to the file and line that defines it (the UI's code references).
    with warnings.catch_warnings():  # code references are a beta API; the warning says only that
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = dg.with_source_code_references(list(loaded.assets or []))
    return copy(loaded, assets=assets)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(DataDir(data_dir_from_env()))
