"""Issue 19, configuration at the edge: opening the warehouse runs no DDL once its layout is
current, and the commands that only look open it read-only. Real DuckDB files, real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

from segpipe.warehouse.connection import connect
from segpipe.warehouse.migrate import FINGERPRINT_KEY

SEGPIPE = Path(sys.executable).parent / "segpipe"
READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("reading", flush=True)
sys.stdin.readline()
"""


def test_a_current_warehouse_is_opened_without_ddl(tmp_path: Path):
    path = tmp_path / "warehouse.duckdb"
    with connect(path):  # a new warehouse: its layout created and stamped
        pass
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE interest_xref")
    with connect(path) as con:  # stamped current: no CREATE runs, so the table stays gone
        gone = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'interest_xref'"
        )
        assert gone.fetchall() == [(0,)]
    with duckdb.connect(str(path)) as con:  # as if another segpipe release had stamped it
        con.execute("UPDATE segpipe_meta SET value = 'other' WHERE key = ?", [FINGERPRINT_KEY])
    with connect(path) as con:
        back = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'interest_xref'"
        )
        assert back.fetchall() == [(1,)]


def test_status_reads_while_another_process_reads(tmp_path: Path):
    """A writer would wait for the reader's lock; `segpipe status` only reads, so it does not."""
    root = tmp_path / "data"
    env = {"SEGPIPE_DATA_DIR": str(root), "SEGPIPE_LOCK_TIMEOUT": "2"}
    first = subprocess.run([SEGPIPE, "status"], env=env, capture_output=True, text=True)
    # Only looking: a data directory with nothing run in it is said so, and not created.
    assert first.returncode == 1 and "no warehouse at" in first.stderr
    assert not root.exists()
    root.mkdir()
    with connect(root / "warehouse.duckdb"):  # what a first `segpipe run` leaves
        pass
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(root / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "reading"
        status = subprocess.run([SEGPIPE, "status"], env=env, capture_output=True, text=True)
        undo = subprocess.run([SEGPIPE, "undo", "x"], env=env, capture_output=True, text=True)
    finally:
        reader.communicate("\n", timeout=30)
    assert status.returncode == 0, status.stderr
    assert "Uploads" in status.stdout and "waiting" not in status.stderr
    assert undo.returncode == 1 and "still locked" in undo.stderr  # a writer waits, then gives up
