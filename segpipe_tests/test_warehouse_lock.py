"""Issue 20, item 5: a process that finds the warehouse locked by another waits, says so, and
gives up after the lock timeout with a message; SIGTERM stops the wait. Real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# `segpipe` processes waiting on a held warehouse lock, signalled.
pytestmark = pytest.mark.e2e

SEGPIPE = Path(sys.executable).parent / "segpipe"
HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS held (x INT)")
print("holding", flush=True)
sys.stdin.readline()  # until the test lets go (or dies)
con.close()
print("released", flush=True)
"""


def _hold(root: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


def _segpipe(root: Path, *args: str, ignoring=(), **env: str) -> subprocess.Popen:
    """`segpipe *args` on `root`, started with the signals in `ignoring` ignored."""
    environment = {**os.environ, "SEGPIPE_DATA_DIR": str(root), **env}
    environment.pop("DAGSTER_HOME", None)

    def ignore() -> None:
        for number in ignoring:
            signal.signal(number, signal.SIG_IGN)

    return subprocess.Popen(
        [SEGPIPE, *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore,
    )


def _wait_for_line(stream, text: str) -> str:
    seen = ""
    deadline = time.monotonic() + 240
    while text not in seen and time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen += line
    return seen


def test_status_waits_for_the_lock_then_answers(tmp_path: Path):
    holder = _hold(tmp_path)
    status = _segpipe(tmp_path, "status")
    said = _wait_for_line(status.stderr, "waiting for process")
    holder.communicate("go\n", timeout=60)  # let go of the warehouse
    out, err = status.communicate(timeout=300)

    assert status.returncode == 0, said + err
    assert f"waiting for process {holder.pid} to close warehouse.duckdb" in said
    assert "Traceback" not in said + err
    assert "Uploads" in out


def test_a_run_gives_up_after_the_lock_timeout_with_a_message(tmp_path: Path):
    holder = _hold(tmp_path)
    try:
        run = _segpipe(tmp_path, "run", SEGPIPE_LOCK_TIMEOUT="3")
        out, err = run.communicate(timeout=300)
    finally:
        holder.kill()
        holder.wait()

    assert run.returncode == 1
    assert "warehouse.duckdb is still locked by process" in err
    assert "after 3 s" in err
    assert "Traceback" not in err + out


@pytest.mark.parametrize(
    "ignoring",
    [(), (signal.SIGINT, signal.SIGTERM)],
    # A background job of a non-interactive shell (or a harness) starts with them ignored.
    ids=["started-normally", "started-with-signals-ignored"],
)
def test_sigterm_stops_a_waiting_run(tmp_path: Path, ignoring):
    holder = _hold(tmp_path)
    try:
        run = _segpipe(tmp_path, "run", ignoring=ignoring)
        assert "waiting for process" in _wait_for_line(run.stderr, "waiting for process")
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=20)
    finally:
        holder.kill()
        holder.wait()

    assert run.returncode == -signal.SIGTERM
