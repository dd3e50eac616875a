"""Dead runs never wedge later ones: each run records the process that executes it, and the
next start fails runs whose process is gone and frees their `duckdb` pool slots.

A run killed with `kill -9` (or by the OOM killer) stays STARTED in the instance and keeps the
slot of the `duckdb` pool it claimed, so every later run would wait for it forever. Dagster's
run monitoring (on in segpipe/dagster.yaml) frees the slots of runs that ended, but it cannot
tell that an in-process run (`segpipe run`) died: its default run launcher has no health check.
So the process is recorded in a run tag and checked here, by `segpipe run` and the inbox sensor.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import TextIO

import dagster as dg

from segpipe.defs.common import PROCESS_TAG, WAREHOUSE_POOL

_UNFINISHED = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
_POLL_SECONDS = 1.0


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (field 3, the state, first); [] without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str:
    """The process's start time (field 22 of stat), "" where /proc is absent."""
    fields = _stat_fields(pid)
    return fields[19] if fields else ""


def this_process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def process_tags() -> dict[str, str]:
    """The tag naming this process, for a run executed in it."""
    return {PROCESS_TAG: this_process()}


def mark_run_process(context: dg.AssetExecutionContext) -> None:
    """Record the process executing this step on its run (a daemon-launched run worker)."""
    if context.run.tags.get(PROCESS_TAG) != this_process():
        context.instance.add_run_tags(context.run.run_id, process_tags())


def _is_gone(process: str) -> bool:
    """True when `process` (a PROCESS_TAG value) ran on this host and is no longer running."""
    host, _, rest = process.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's process: its own host checks it
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _stat_fields(pid)
    if fields and fields[0] in ("Z", "X"):
        return True  # killed, not yet reaped by its parent
    return bool(started) and bool(fields) and fields[19] != started


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every unfinished run whose recorded process is gone, and free the pool slots
    of every finished run still holding one; one line per run dealt with."""
    done = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_UNFINISHED)):
        process = run.tags.get(PROCESS_TAG)
        if process and _is_gone(process):
            instance.report_run_failed(
                run, f"segpipe: the process that ran this run ({process}) is gone (killed)"
            )
            done.append(f"run {run.run_id[:8]} ({run.job_name}) died with its process: failed")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
                done.append(f"run {run_id[:8]} had ended: its {WAREHOUSE_POOL} pool slot freed")
    return done


def _holders(instance: dg.DagsterInstance) -> list[str]:
    """The runs holding every slot of the pool, or [] when a slot is free."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    info = storage.get_concurrency_info(WAREHOUSE_POOL)
    if info.limit is None or len(info.claimed_slots) < info.limit:
        return []
    return sorted(info.active_run_ids)


def wait_for_pool(instance: dg.DagsterInstance, out: TextIO = sys.stdout) -> None:
    """Return once the `duckdb` pool has a free slot; while it has none, say which runs hold it
    (once) and keep failing the dead ones. Ctrl-C and SIGTERM stop the wait as usual."""
    said: list[str] = []
    while holders := _holders(instance):
        if holders != said:
            names = ", ".join(_describe(instance, run_id) for run_id in holders)
            print(f"segpipe: waiting for the {WAREHOUSE_POOL} pool, held by {names}", file=out)
            out.flush()
            said = holders
        for line in fail_dead_runs(instance):
            print(f"segpipe: {line}", file=out)
        time.sleep(_POLL_SECONDS)


def _describe(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return f"run {run_id[:8]}"
    where = run.tags.get(PROCESS_TAG, "process unknown")
    return f"run {run_id[:8]} ({run.job_name}, {run.status.value}, {where})"
