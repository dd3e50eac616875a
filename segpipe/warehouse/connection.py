"""Opening the warehouse file, the same way from every process and every step."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from segpipe.config import is_file_location
from segpipe.warehouse.migrate import ensure_current, is_current

# DuckDB shares one database instance per file within a process and refuses a second
# connection with other settings, so every caller opens it with exactly these.
# 1 GB keeps the 50M-row membership table work under the 2 GiB peak target (SPEC 9) without
# slowing it (README, "Design measurements").
SETTINGS = {"memory_limit": "1GB", "custom_user_agent": "segpipe"}
# An upload's resolve (the joins that find its people and interests, and the marking of
# superseded rows) runs while DuckDB holds the upload's validated rows and polars holds nothing
# (reading is done; the errors report starts after it). It may use more: at 1 GB it spills on
# the 10M-row bench upload (README, "Design measurements"), and the process's peak stays
# where the reading made it.
RESOLVE_MEMORY_LIMIT = "1.3GB"
# How long a process waits for another one to close the warehouse (DuckDB allows one writing
# process per file); SEGPIPE_LOCK_TIMEOUT overrides it, in seconds.
LOCK_TIMEOUT_ENV = "SEGPIPE_LOCK_TIMEOUT"
LOCK_TIMEOUT_SECONDS = 600.0
_LOCK_POLL_SECONDS = 0.25
_HOLDER = re.compile(r"\(PID (\d+)\)")


class WarehouseBusy(RuntimeError):
    """Another process kept the warehouse file locked for longer than the lock timeout."""


def lock_timeout() -> float:
    return float(os.environ.get(LOCK_TIMEOUT_ENV, LOCK_TIMEOUT_SECONDS))


def _locked_by_other_process(error: duckdb.Error) -> bool:
    return "Could not set lock" in str(error)


def open_waiting(
    path: Path | str, timeout: float | None = None, *, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """`duckdb.connect(path)` with segpipe's settings; while another process holds the file's
    lock, waits (saying so once on stderr, naming the holder's PID) up to `timeout` seconds
    (default `lock_timeout()`), then raises WarehouseBusy naming the file and the holder."""
    timeout = lock_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=SETTINGS)
        except duckdb.IOException as error:
            if not _locked_by_other_process(error):
                raise
            holder = _HOLDER.search(str(error))
            who = f"process {holder.group(1)}" if holder else "another process"
            if time.monotonic() >= deadline:
                raise WarehouseBusy(
                    f"{Path(path).name} is still locked by {who} after {timeout:.0f} s; "
                    f"try again when it has finished (or raise {LOCK_TIMEOUT_ENV})"
                ) from None
            if not said:
                print(
                    f"segpipe: waiting for {who} to close {Path(path).name} "
                    f"(one writer at a time; up to {timeout:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                said = True
            time.sleep(_LOCK_POLL_SECONDS)


@contextmanager
def connect(path: Path | str, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection with the public tables in place; closed on the way out, error or not.
    Waits for another process's lock as `open_waiting` does.

    The layout is checked in one query; the DDL that creates or migrates it runs only when the
    warehouse is new, older, or was made by a segpipe with another layout. `read_only` (the
    commands that only look: status, members, history) opens without the writer's lock; a
    warehouse that first needs that DDL gets it from a short read-write open before.
    Raises WarehouseVersionError for a warehouse newer than this segpipe."""
    if read_only and is_file_location(path) and not Path(path).exists():
        _bring_current(path)  # DuckDB opens no missing file read-only
    con = open_waiting(path, read_only=read_only)
    try:
        if not is_current(con):
            if read_only:  # the one write a reader may need, on a connection of its own
                con.close()
                _bring_current(path)
                con = open_waiting(path, read_only=True)
            else:
                ensure_current(con)
        yield con
    finally:
        con.close()


def _bring_current(path: Path | str) -> None:
    con = open_waiting(path)
    try:
        ensure_current(con)
    finally:
        con.close()


@contextmanager
def memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """DuckDB's `memory_limit` (for its whole database instance: the process's connections to
    the file) set to `limit` (DuckDB's units: "1.3GB") for the block, then back to SETTINGS'."""
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{SETTINGS['memory_limit']}'")
