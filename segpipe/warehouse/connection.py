"""Opening the warehouse file, the same way from every process and every step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from segpipe.warehouse.migrate import ensure_current

# DuckDB shares one database instance per file within a process and refuses a second
# connection with other settings, so every caller opens it with exactly these.
# 1 GB keeps the 50M-row membership table work under the 2 GiB target at no cost in speed.
SETTINGS = {"memory_limit": "1GB", "custom_user_agent": "segpipe"}


@contextmanager
def connect(path: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection with the public tables in place; closed on the way out, error or not."""
    con = duckdb.connect(str(path), config=SETTINGS)
    try:
        ensure_current(con)
        yield con
    finally:
        con.close()
