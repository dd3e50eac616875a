"""The deployment's data directory and its DuckDB warehouse, as Dagster resources."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from segpipe.config import DataDir, data_dir_from_env
from segpipe.warehouse.connection import SETTINGS, connect

# Every asset that opens the DuckDB file is in this pool: DuckDB allows one writing process per
# file, so runs queue for the pool instead of failing on the lock.
WAREHOUSE_POOL = "duckdb"


class DataDirResource(dg.ConfigurableResource):
    """Where the deployment keeps its inbox, archive, reports, exports and warehouse."""

    root: str

    @property
    def paths(self) -> DataDir:
        return DataDir(Path(self.root)).ensure()


class Warehouse(DuckDBResource):
    """The DuckDB warehouse, its public tables created on first use."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # segpipe's own settings, so `segpipe run` and the steps it drives share one database
        # instance per process, and a connection that raised is still closed.
        with connect(self.database) as con:
            yield con


def build_resources(root: Path | None = None) -> dict[str, object]:
    root = (root or data_dir_from_env()).resolve()
    data = DataDir(root)
    return {
        "data_dir": DataDirResource(root=str(root)),
        "warehouse": Warehouse(database=str(data.warehouse), connection_config=dict(SETTINGS)),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
