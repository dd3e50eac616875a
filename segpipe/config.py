"""Where a deployment keeps its files (SPEC section 1)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "SEGPIPE_DATA_DIR"
# The warehouse's file in the data directory, unless $SEGPIPE_WAREHOUSE names another.
WAREHOUSE_FILE = "warehouse.duckdb"
# Where the DuckDB warehouse lives when not in the data directory: a path, or any DuckDB
# connection string (`md:segpipe` for MotherDuck), per deployment.
WAREHOUSE_ENV = "SEGPIPE_WAREHOUSE"


def is_file_location(location: Path | str) -> bool:
    """A warehouse location that is a file path, not a connection string such as `md:segpipe`."""
    return not str(location).startswith("md:")


class WarehouseLocationError(RuntimeError):
    """$SEGPIPE_WAREHOUSE names a file in a folder that does not exist (DuckDB creates the file,
    never its folder): said before anything is read or moved."""


def data_dir_from_env() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, "data")).resolve()


@dataclass(frozen=True)
class DataDir:
    """The folders and files of one deployment, all below one root."""

    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def warehouse(self) -> Path:
        """<root>/warehouse.duckdb, unless $SEGPIPE_WAREHOUSE names another database (a path or a
        DuckDB connection string such as `md:segpipe`, kept as written: str() gives it back)."""
        if location := os.environ.get(WAREHOUSE_ENV, "").strip():
            return Path(location)
        return self.root / WAREHOUSE_FILE

    @property
    def segments_yaml(self) -> Path:
        return self.root / "segments.yaml"

    @property
    def dagster_home(self) -> Path:
        return self.root / ".dagster"

    @property
    def warehouse_is_file(self) -> bool:
        """False for a DuckDB connection string (`md:…`): nothing on disk to look for or copy."""
        return is_file_location(self.warehouse)

    def check_warehouse_location(self) -> None:
        """Raises WarehouseLocationError when $SEGPIPE_WAREHOUSE's folder is missing (a typo, an
        unmounted share): the default location's folder is the data directory itself, which the
        commands create or say is missing."""
        location = self.warehouse
        if not os.environ.get(WAREHOUSE_ENV, "").strip() or not is_file_location(location):
            return
        if not location.parent.is_dir():
            raise WarehouseLocationError(
                f"{WAREHOUSE_ENV} is {location}, but the folder {location.parent} does not "
                f"exist: create it, or set {WAREHOUSE_ENV} to a path in an existing folder"
            )

    def errors_csv(self, upload_id: str) -> Path:
        return self.rejected / f"{upload_id}.errors.csv"

    def ensure(self) -> DataDir:
        for folder in (self.inbox, self.archive, self.rejected, self.staging, self.exports):
            folder.mkdir(parents=True, exist_ok=True)
        return self
