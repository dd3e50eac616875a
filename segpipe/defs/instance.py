"""The Dagster instance segpipe runs on, and the pool limit it needs."""

import os
import shutil
from pathlib import Path

import dagster as dg

from segpipe.config import DataDir
from segpipe.defs.common import WAREHOUSE_POOL

INSTANCE_TEMPLATE = Path(__file__).resolve().parent.parent / "dagster.yaml"
# Dagster settings read from the environment of the process that creates a run: `segpipe run`
# and the bench (through `prepare_home`), and under `make dev` the daemon (sensor runs) and the
# webserver (runs launched from the UI), which `make dev` starts with `python -m
# segpipe.defs.instance`'s output in their environment.
#
# DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS: a run over a range of upload partitions logs
# one "materialization planned" event per asset (naming the range) instead of one per asset and
# partition, i.e. 4 event-log writes per run instead of 4 per file. What the UI loses: the
# partitions of a run are not shown "in progress" while it runs, nor "failed" when it fails
# (Dagster derives both from per-partition planned events; a partition a failed run did not
# materialize shows as missing). segpipe does not rely on either: every file a run reaches gets
# its materializations, a rejected one with its status and reason in the raw_upload metadata,
# the `files_applied` check names the rejected files, and which files still need a run comes
# from the warehouse's `uploads` table (runner.pending_uploads), not from Dagster's partition
# status.
DAGSTER_SETTINGS = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}


def apply_settings() -> None:
    """Put DAGSTER_SETTINGS in this process's environment (a value already set is kept)."""
    for name, value in DAGSTER_SETTINGS.items():
        os.environ.setdefault(name, value)


def prepare_home(data: DataDir) -> Path:
    """DAGSTER_HOME if set, else <data dir>/.dagster with segpipe's dagster.yaml; either way,
    with DAGSTER_SETTINGS applied."""
    apply_settings()
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = segpipe_home(data.dagster_home)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def segpipe_home(home: Path) -> Path:
    """The folder `home` (created if missing) with segpipe's dagster.yaml, copied there when it
    has none: a Dagster home with segpipe's instance settings."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(INSTANCE_TEMPLATE, home / "dagster.yaml")
    return home


def ensure_warehouse_pool(instance: dg.DagsterInstance) -> None:
    """Give the `duckdb` pool one slot when the instance sets no limit itself (a bare
    `dagster dev` with a temporary home), so DuckDB steps still queue instead of colliding."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    if instance.get_concurrency_config().pool_config.default_pool_limit is not None:
        return
    if WAREHOUSE_POOL not in storage.get_concurrency_keys():
        storage.set_concurrency_slots(WAREHOUSE_POOL, 1)


if __name__ == "__main__":
    # `make dev`: NAME=VALUE lines for `env`, so dagster dev's processes run with the settings.
    for name, value in DAGSTER_SETTINGS.items():
        print(f"{name}={os.environ.get(name, value)}")
