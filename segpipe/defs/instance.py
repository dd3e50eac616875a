"""The Dagster instance segpipe runs on, and the pool limit it needs."""

import os
import shutil
from pathlib import Path

import dagster as dg

from segpipe.config import DataDir
from segpipe.defs.resources import WAREHOUSE_POOL

INSTANCE_TEMPLATE = Path(__file__).resolve().parent.parent / "dagster.yaml"


def prepare_home(data: DataDir) -> Path:
    """DAGSTER_HOME if set, else <data dir>/.dagster with segpipe's dagster.yaml."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = data.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(INSTANCE_TEMPLATE, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
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
