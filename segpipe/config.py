"""Where a deployment keeps its files (SPEC section 1)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "SEGPIPE_DATA_DIR"


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
        return self.root / "warehouse.duckdb"

    @property
    def segments_yaml(self) -> Path:
        return self.root / "segments.yaml"

    @property
    def dagster_home(self) -> Path:
        return self.root / ".dagster"

    def errors_csv(self, upload_id: str) -> Path:
        return self.rejected / f"{upload_id}.errors.csv"

    def ensure(self) -> DataDir:
        for folder in (self.inbox, self.archive, self.rejected, self.staging, self.exports):
            folder.mkdir(parents=True, exist_ok=True)
        return self
