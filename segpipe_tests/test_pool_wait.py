"""Issue 20, item 1: a `segpipe run` that finds the `duckdb` pool held says by which run, stops
on SIGTERM, and goes on by itself once the holder's process is gone. Real processes: the
holding run is recorded against a live process, which the test then kills with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from segpipe.defs.common import PROCESS_TAG, WAREHOUSE_POOL
from segpipe.defs.instance import segpipe_home
from segpipe.defs.recovery import _start_time

# `segpipe run` processes waiting on a held pool slot, signalled and killed.
pytestmark = pytest.mark.e2e

SEGPIPE = Path(sys.executable).parent / "segpipe"
PEOPLE = "member_id,email,first_name\n1,ana@example.org,Ana\n"


def _deployment(root: Path) -> dg.DagsterInstance:
    home = segpipe_home(root / ".dagster")
    (root / "inbox").mkdir()
    path = root / "inbox" / "constituents_a.csv"
    path.write_text(PEOPLE)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return dg.DagsterInstance.from_config(str(home))


def _holding_run(instance: dg.DagsterInstance, process: subprocess.Popen) -> str:
    """A STARTED run executed by `process`, holding the pool's one slot."""
    import socket

    run_id = str(uuid.uuid4())
    tag = f"{socket.gethostname()}:{process.pid}:{_start_time(process.pid)}"
    instance.add_run(
        DagsterRun(
            job_name="refresh_segments_job",
            run_id=run_id,
            status=dg.DagsterRunStatus.STARTED,
            tags={PROCESS_TAG: tag},
        )
    )
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
    claim = storage.claim_concurrency_slot(WAREHOUSE_POOL, run_id, "segments")
    assert claim.slot_status.value == "CLAIMED"
    return run_id


def _start_run(root: Path) -> subprocess.Popen:
    env = {**os.environ, "SEGPIPE_DATA_DIR": str(root), "DAGSTER_HOME": str(root / ".dagster")}
    return subprocess.Popen(
        [SEGPIPE, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _read_until(process: subprocess.Popen, text: str) -> str:
    seen, deadline = "", time.monotonic() + 240
    while text not in seen and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
    return seen


def test_a_waiting_run_names_the_holder_and_stops_on_sigterm(tmp_path: Path):
    instance = _deployment(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        run_id = _holding_run(instance, holder)
        run = _start_run(tmp_path)
        said = _read_until(run, "waiting for the duckdb pool")
        held_by = f"held by run {run_id[:8]} (refresh_segments_job"
        assert f"waiting for the duckdb pool, {held_by}" in said
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=30)
        assert run.returncode == -signal.SIGTERM
    finally:
        holder.kill()
        holder.wait()


def test_a_waiting_run_goes_on_when_the_holder_is_killed(tmp_path: Path):
    instance = _deployment(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        run_id = _holding_run(instance, holder)
        run = _start_run(tmp_path)
        said = _read_until(run, "waiting for the duckdb pool")
        assert "waiting for the duckdb pool" in said, said
    finally:
        holder.kill()  # SIGKILL: the holding run's process is gone
        holder.wait()
    out, _ = run.communicate(timeout=300)

    assert run.returncode == 0, said + out
    assert f"run {run_id[:8]} (refresh_segments_job) died with its process: failed" in out
    assert "constituents_a.csv" in out and "applied" in out
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE


def test_the_inbox_sensor_fails_a_killed_run_and_frees_its_slot(tmp_path: Path):
    """Under `dagster dev` the inbox sensor does the same at every tick."""
    from segpipe.defs.resources import build_resources
    from segpipe.defs.uploads.sensors import receive_inbox_files

    instance = _deployment(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    run_id = _holding_run(instance, holder)
    holder.kill()
    holder.wait()
    with dg.build_sensor_context(instance=instance, resources=build_resources(tmp_path)) as context:
        result = receive_inbox_files(context)

    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots == []
    # And the new file's run (with the refresh queued behind it) can take the slot.
    upload, _refresh = result.run_requests
    assert upload.job_name == "process_upload_job"
