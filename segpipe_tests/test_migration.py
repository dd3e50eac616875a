"""A warehouse made by the release before Luminate's two identifiers (person key `member_id
BIGINT`, no schema version) opens under this one: migrated in one transaction, or refused with
what to do, never half-migrated.

The old warehouse is made by the old release's own code, from git history, running its sample
deployment through its own `segpipe run` in a subprocess."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import duckdb
import pytest

from segpipe.cli import main
from segpipe.warehouse.connection import connect
from segpipe.warehouse.migrate import WarehouseVersionError
from segpipe.warehouse.schema import SCHEMA_VERSION
from segpipe_tests.conftest import REPO, csv, deployment_at

# an old release's code runs its whole sample in a process of its own.
pytestmark = pytest.mark.e2e

# The last commit of the version-1 layout (main when the identity change began).
OLD_RELEASE = "b21de0f"
OLD_AS_OF = "2026-11-07T00:00:00"
# What the migration must keep, table by table, read straight from the old file.
KEPT = {
    "constituents": "SELECT member_id, email, first_name, lifetime_value FROM constituents",
    "interest_memberships": "SELECT member_id, interest_id, status, since FROM "
    "interest_memberships",
    "segment_memberships": "SELECT segment_id, member_id FROM segment_memberships",
    "membership_history": "SELECT upload_id, member_id, segment_id, interest_id, change FROM "
    "membership_history",
    "events": 'SELECT member_id, event, "timestamp" FROM events',
    "sync_members": "SELECT destination, segment_id, key_value, member_id FROM sync_members",
    "subscriber_deliveries": "SELECT domain, segment_id, member_id FROM subscriber_deliveries",
}


def _old_code(target: Path) -> Path:
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(REPO),
            "archive",
            "--format=tar",
            OLD_RELEASE,
            "segpipe",
            "data",
            "pyproject.toml",
        ],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def _old_segpipe(code: Path, *args: str, home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(code), "DAGSTER_HOME": str(home)}
    env.pop("SEGPIPE_DATA_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "segpipe.cli", *args], env=env, cwd=code, capture_output=True
    )
    assert done.returncode in (0, 2), done.stderr.decode()[-3000:]


@pytest.fixture(scope="module")
def old_data(tmp_path_factory) -> Path:
    """The old release's sample deployment, run to the end by the old release: a pristine copy
    for each test to open."""
    root = tmp_path_factory.mktemp("old")
    code = _old_code(root / "code")
    data = root / "deployment"
    home = root / "home"
    home.mkdir()
    _old_segpipe(code, "sample", str(data), home=home)
    _old_segpipe(code, "run", "--data-dir", str(data), "--as-of", OLD_AS_OF, home=home)
    return data


def _read_old(path: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {table: sorted(con.execute(sql).fetchall(), key=repr) for table, sql in KEPT.items()}


def _copy(path: Path, target: Path) -> Path:
    target.write_bytes(path.read_bytes())
    return target


def test_an_old_warehouse_is_migrated_and_keeps_every_row(old_data: Path, tmp_path: Path):
    path = _copy(old_data / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    before = _read_old(path)
    assert len(before["constituents"]) == 14 and len(before["membership_history"]) > 20

    with connect(path) as con:
        version = con.execute("SELECT value FROM segpipe_meta WHERE key = 'schema_version'")
        assert version.fetchall() == [(str(SCHEMA_VERSION),)]
        after = {
            table: sorted(con.execute(sql.replace("member_id", "cons_id")).fetchall(), key=repr)
            for table, sql in KEPT.items()
        }
        # The old numeric member id is the person's cons_id, and their member_id as text.
        ids = con.execute("SELECT cons_id, member_id FROM constituents").fetchall()
        view = con.execute("SELECT count(*) FROM segment_members").fetchall()[0][0]
        indexes = con.execute("SELECT index_name FROM duckdb_indexes() ORDER BY 1").fetchall()
    assert after == before
    assert all(member_id == str(cons_id) for cons_id, member_id in ids)
    assert view > len(before["segment_memberships"])  # the view is back, interest groups too
    assert indexes == [("constituents_email",), ("constituents_member_id",)]


def test_the_migrated_warehouse_takes_new_uploads(old_data: Path, tmp_path: Path):
    with deployment_at(tmp_path / "deployment") as deployment:
        # The old deployment whole (archive, exports), under a new Dagster instance.
        shutil.copytree(old_data, deployment.data.root, dirs_exist_ok=True)
        # The old sample named Maria as member 1001: that id still finds her, as text.
        deployment.drop(
            "segmentation_after.csv", csv("member_id,interest_name,opt", "1001,Migrated,in")
        )
        deployment.drop("constituents_after.csv", csv("MEMBER_ID,PRIMARY_EMAIL", "RE-1,n@x.org"))
        code, printed = deployment.run()
        assert code == 0, printed
        maria = deployment.query(
            "SELECT c.email FROM interest_memberships m JOIN constituents c USING (cons_id) "
            "JOIN interests i USING (interest_id) WHERE i.name = 'Migrated'"
        )
        newest = deployment.query("SELECT cons_id FROM constituents WHERE member_id = 'RE-1'")
        highest_old = deployment.query(
            "SELECT max(cons_id) AS m FROM constituents WHERE member_id <> 'RE-1'"
        )
    assert maria["email"].to_list() == ["maria.alvarez@example.org"]
    assert newest["cons_id"].to_list() == [highest_old["m"][0] + 1]


def test_a_migration_that_fails_changes_nothing_and_says_what_to_do(old_data: Path, tmp_path: Path):
    path = _copy(old_data / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(path)) as con:
        # An analyst's own index: DuckDB will not alter a table an index depends on.
        con.execute("CREATE INDEX analyst_phone ON constituents (phone)")
    before = _read_old(path)
    refused = pytest.raises(WarehouseVersionError, match=r"drop it \(DROP INDEX name\) and run")
    with refused, connect(path):
        pass
    assert _read_old(path) == before  # still version 1, whole
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    assert "segpipe_meta" not in tables and "segment_members" in tables


def test_segpipe_run_on_a_warehouse_from_a_newer_release_refuses(tmp_path: Path, capsys):
    with deployment_at(tmp_path / "deployment") as deployment:
        with connect(deployment.data.warehouse) as con:
            con.execute("UPDATE segpipe_meta SET value = '99' WHERE key = 'schema_version'")
        deployment.drop("constituents.csv", csv("email", "a@example.org"))
        code = main(["run", "--data-dir", str(deployment.data.root)])
    assert code == 1
    assert "schema version 99, newer than this segpipe knows" in capsys.readouterr().err
