"""The deployment's data directory and its DuckDB warehouse, as Dagster resources."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from segpipe.config import DataDir
from segpipe.warehouse.connection import SETTINGS, connect


class DataDirResource(dg.ConfigurableResource):
    """Where the deployment keeps its inbox, archive, reports, exports and warehouse."""

    root: str

    @property
    def paths(self) -> DataDir:
        # The folders exist: build_definitions made them once, not on every access.
        return DataDir(Path(self.root))


class Warehouse(DuckDBResource):
    """The DuckDB warehouse, its public tables created on first use."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # segpipe's own settings, so `segpipe run` and the steps it drives share one database
        # instance per process, and a connection that raised is still closed.
        with connect(self.database) as con:
            yield con


def build_resources(data: DataDir | Path) -> dict[str, object]:
    """The resources of one deployment: `data_dir` (its folders) and `warehouse` (its DuckDB)."""
    data = data if isinstance(data, DataDir) else DataDir(Path(data).resolve())
    return {
        "data_dir": DataDirResource(root=str(data.root)),
        "warehouse": Warehouse(database=str(data.warehouse), connection_config=dict(SETTINGS)),
    }
