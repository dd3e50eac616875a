"""Small helpers every piece of warehouse SQL uses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import polars as pl


def quote(identifier: str) -> str:
    """A DuckDB identifier, quoted so that any column name from a file is safe."""
    return '"' + identifier.replace('"', '""') + '"'


def frame(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> pl.DataFrame:
    return con.sql(query, params=params).pl()


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None):
    # fetchall, not fetchone: a half-read result blocks the next con.sql on this connection.
    rows = con.execute(query, params or []).fetchall()
    return rows[0][0] if rows else None


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: commit when the block ends, roll back if anything in it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, data: pl.DataFrame):
    """`data` visible to SQL as the view `name` for the length of the block."""
    con.register(name, data)
    try:
        yield name
    finally:
        con.unregister(name)
