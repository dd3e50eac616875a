"""Issue 20, item 1: a `segpipe run` killed with SIGKILL at several points never wedges the
next one. Real processes, real signals: the next unattended `segpipe run` fails the dead run,
frees its `duckdb` pool slot, applies the killed file exactly once, and the warehouse and the
exports end equal to those of a clean run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from segpipe.warehouse.schema import TABLES

# `segpipe run` processes killed at each stage, then run again.
pytestmark = pytest.mark.e2e

SEGPIPE = Path(sys.executable).parent / "segpipe"
AS_OF = "2026-11-07T00:00:00"
BIG_ROWS = 200_000
# The sample's inbox files and the large file after them: the run's progress lines count them.
FILES = len(list((Path(__file__).resolve().parent.parent / "data" / "inbox").iterdir())) + 1
# Tables whose rows say when or in which run something happened, not what.
VOLATILE_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The sample deployment plus a large constituent file arriving last, made once: each test
    runs a copy (copytree keeps the files' modification times, so their arrival order)."""
    root = tmp_path_factory.mktemp("prepared") / "deployment"
    subprocess.run([SEGPIPE, "sample", str(root)], check=True, capture_output=True)
    big = root / "inbox" / "constituents_2026-11-06_big.csv"
    with big.open("w") as out:
        out.write("member_id,email,first_name,email_opt_in,lifetime_value\n")
        out.writelines(
            f"{500_000 + i},person{i}@example.org,P{i},yes,{i % 90_000}\n" for i in range(BIG_ROWS)
        )
    stamp = datetime(2026, 11, 2, 10, 0).timestamp()
    os.utime(big, (stamp, stamp))
    return root


def _deployment(prepared: Path, root: Path) -> Path:
    shutil.copytree(prepared, root)
    return root


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "SEGPIPE_DATA_DIR")}
    return {**env, "SEGPIPE_DATA_DIR": str(root)}


def _run(root: Path, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SEGPIPE, "run", "--as-of", AS_OF],
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _run_and_kill(root: Path, marker: str, delay: float) -> str:
    """Start `segpipe run`, SIGKILL it `delay` s after `marker` appears in its output."""
    process = subprocess.Popen(
        [SEGPIPE, "run", "--as-of", AS_OF],
        env=_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    found = threading.Event()

    def watch() -> None:
        for line in process.stdout:
            seen.append(line)
            if marker in line:
                found.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert found.wait(300), f"never printed {marker!r}:\n{''.join(seen)}"
        time.sleep(delay)
        assert process.poll() is None, f"finished before the kill:\n{''.join(seen)}"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    return "".join(seen)


def fingerprint(root: Path) -> dict[str, list]:
    """Every table's rows without the columns that record when or in which run (and `syncs`,
    which gains a row per extra sync), plus the bytes of every full list exported (adds and
    removes are relative to the previous sync, which a killed run may have completed)."""
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        tables = {}
        for table in TABLES:
            if table == "syncs":
                continue
            columns = [
                f'"{name}"'
                for name, kind in con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = ? ORDER BY ordinal_position",
                    [table],
                ).fetchall()
                if kind not in VOLATILE_TYPES and name != "run_id"
            ]
            tables[table] = con.execute(
                f'SELECT {", ".join(columns)} FROM "{table}" ORDER BY ALL'
            ).fetchall()
    finally:
        con.close()
    exports = root / "exports"
    tables["exports"] = sorted(
        (str(p.relative_to(exports)), p.read_bytes())
        for p in exports.rglob("*.csv")
        if "history" not in p.parts and p.name not in ("adds.csv", "removes.csv")
    )
    return tables


@pytest.fixture(scope="module")
def reference(prepared, tmp_path_factory) -> dict[str, list]:
    root = _deployment(prepared, tmp_path_factory.mktemp("clean") / "deployment")
    result = _run(root)
    assert result.returncode == 2, result.stdout + result.stderr  # the sample's bad files
    return fingerprint(root)


@pytest.mark.parametrize(
    ("marker", "delay"),
    [
        ("new file(s)", 0.5),  # while the first files apply
        (f"[{FILES - 1}/{FILES}]", 0.3),  # inside the large file's transaction
        (f"[{FILES}/{FILES}]", 0.3),  # the uploads committed, segments refreshing
        ("exported ", 0.0),  # between two destinations' syncs
    ],
    ids=["early-upload", "large-file", "refresh", "sync"],
)
def test_a_killed_run_is_recovered_by_the_next_run(prepared, tmp_path, reference, marker, delay):
    import dagster as dg

    root = _deployment(prepared, tmp_path / "deployment")
    _run_and_kill(root, marker, delay)

    result = _run(root)

    # 2 when the files the sample rejects on purpose were still pending, else 0
    assert result.returncode in (0, 2), result.stdout + result.stderr
    assert "run failed" not in result.stdout, result.stdout
    # The killed process's run is failed by the next one, never left started, and its
    # `duckdb` pool slot is free again.
    assert "died with its process: failed" in result.stdout, result.stdout
    instance = dg.DagsterInstance.from_config(str(root / ".dagster"))
    assert dg.DagsterRunStatus.STARTED not in {r.status for r in instance.get_runs()}
    assert instance.event_log_storage.get_concurrency_run_ids() == set()
    assert fingerprint(root) == reference
    big = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        applied = big.execute(
            "SELECT status, rows_applied FROM uploads WHERE file_name LIKE '%_big.csv'"
        ).fetchall()
    finally:
        big.close()
    assert applied == [("applied", BIG_ROWS)]  # exactly once
