"""Fixtures every test shares: a real deployment folder, a real Dagster instance, real files."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from segpipe.config import DATA_DIR_ENV, DataDir
from segpipe.defs.instance import segpipe_home
from segpipe.warehouse.connection import connect
from segpipe.warehouse.sql import frame

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data"
FIRST_ARRIVAL = datetime(2026, 11, 2, 9, 0).timestamp()


@dataclass
class Deployment:
    """A segpipe data directory with its own Dagster home, driven the way a user drives it."""

    data: DataDir
    arrivals: int = 0

    def drop(self, name: str, content: str | bytes, *, arrival: int | None = None) -> Path:
        """Put a file in the inbox; files arrive in drop order unless `arrival` says otherwise."""
        path = self.data.inbox / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        stamp = FIRST_ARRIVAL + (self.arrivals if arrival is None else arrival)
        os.utime(path, (stamp, stamp))
        self.arrivals += 1
        return path

    def run(self, as_of: datetime | None = None) -> tuple[int, str]:
        """`segpipe run` in-process: (exit code, what it printed)."""
        from segpipe.runner import run_pipeline

        out = io.StringIO()
        code = run_pipeline(self.data, as_of=as_of, out=out)
        return code, out.getvalue()

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        with connect(self.data.warehouse) as con:
            return frame(con, sql, params)

    def queries(self, sql: dict[str, str]) -> dict[str, pl.DataFrame]:
        """Each query's rows under its name, from one opening of the warehouse: every opening
        starts a DuckDB database (~30 ms), which a snapshot of every table would pay per table."""
        with connect(self.data.warehouse) as con:
            return {name: frame(con, query) for name, query in sql.items()}

    def members(self, segment: str) -> set[int]:
        """The member_ids of the segment named `segment`."""
        rows = self.query(
            "SELECT m.cons_id FROM segment_members m JOIN segments s USING (segment_id) "
            "WHERE s.name = ?",
            [segment],
        )
        return set(rows["cons_id"])

    def upload(self, file_name: str) -> dict:
        rows = self.query("SELECT * FROM uploads WHERE file_name = ?", [file_name])
        assert rows.height == 1, f"expected one upload named {file_name}, found {rows.height}"
        return rows.row(0, named=True)

    def errors(self, file_name: str) -> pl.DataFrame:
        upload_id = self.upload(file_name)["upload_id"]
        return pl.read_csv(self.data.errors_csv(upload_id), infer_schema=False)

    def instance(self):
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.data.dagster_home))


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    root = tmp_path / "deployment"
    monkeypatch.setenv("DAGSTER_HOME", str(segpipe_home(root / ".dagster")))
    monkeypatch.setenv(DATA_DIR_ENV, str(root))
    return Deployment(DataDir(root).ensure())


def with_sample(deployment: Deployment) -> Deployment:
    """The repository's sample deployment in `deployment`, its inbox arriving in name order."""
    shutil.copy(SAMPLE / "segments.yaml", deployment.data.segments_yaml)
    for path in sorted((SAMPLE / "inbox").iterdir()):
        deployment.drop(path.name, path.read_bytes())
    return deployment


@pytest.fixture
def sample(deployment: Deployment) -> Deployment:
    return with_sample(deployment)


@pytest.fixture(scope="session")
def applied_sample(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """The sample through `segpipe run` (as of now) once per test process, for tests that only
    read what it left: a test that changes it works on `copy_of` it. The environment is set only
    while it runs."""
    with deployment_at(tmp_path_factory.mktemp("applied_sample") / "deployment") as deployment:
        code, printed = with_sample(deployment).run()
        assert code == 2, printed  # the sample's deliberately bad files
    return deployment


def copy_of(deployment: Deployment, root: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    """A copy of `deployment` in `root` (warehouse, files, Dagster home: its run history too),
    the environment set for the test: a copied applied deployment costs far less than a run."""
    shutil.copytree(deployment.data.root, root, symlinks=True)
    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster"))
    monkeypatch.setenv(DATA_DIR_ENV, str(root))
    return Deployment(DataDir(root), arrivals=deployment.arrivals)


def csv(*rows: str) -> str:
    """Lines joined into file content: csv("email,opt", "a@b.org,in")."""
    return "\n".join(rows) + "\n"


@contextmanager
def deployment_at(root: Path) -> Iterator[Deployment]:
    """A deployment in `root` with its own Dagster home, the environment set for the block: for
    module-scoped fixtures that share one pipeline run across many assertions."""
    home = segpipe_home(root / ".dagster")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        patch.setenv(DATA_DIR_ENV, str(root))
        yield Deployment(DataDir(root).ensure())
