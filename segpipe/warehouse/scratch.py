"""Scratch tables: the temp tables a piece of work builds on its connection, by handle.

Each name is handed out here, unique on the process (`_changes_7`), so two modules never meet
in one temp table by agreeing on its name; the code that asks for it passes the name on as an
argument, and the block that asked drops it when it ends, error or not. Temp tables live as
long as their connection, and one connection processes a whole run's files: a table left
behind would carry one upload's rows into the next (or hold a 10M-row upload's ~1 GB).

Dropping costs one statement a block however many tables it names (several DROPs in one
`execute`), what the fixed names cost before.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import duckdb

_numbers = itertools.count(1)


def name_for(purpose: str) -> str:
    """A temp-table name no other scratch block has: `_{purpose}_{n}`."""
    return f"_{purpose}_{next(_numbers)}"


@contextmanager
def scratch(con: duckdb.DuckDBPyConnection, purpose: str, *, view: bool = False) -> Iterator[str]:
    """A unique temp-table (or, with `view`, temp-view) name for the block; dropped at its end."""
    with scratches(con, purpose, view=view) as (name,):
        yield name


@contextmanager
def scratches(
    con: duckdb.DuckDBPyConnection, *purposes: str, view: bool = False
) -> Iterator[tuple[str, ...]]:
    """One unique name per purpose, all dropped in one statement when the block ends."""
    with dropped(con, *(name_for(purpose) for purpose in purposes), view=view) as names:
        yield names


@contextmanager
def dropped(
    con: duckdb.DuckDBPyConnection, *names: str, view: bool = False
) -> Iterator[tuple[str, ...]]:
    """The temp tables (views) `names`, whoever creates them in the block, gone when it ends:
    for the names a caller hands on to code that consumes them (a kind's resolve drops its
    input early to free memory, so the drops say IF EXISTS).

    After an error inside an aborted transaction DuckDB refuses every statement until the
    rollback, which takes the tables created in it along; the block's own error is raised, not
    the refused DROP's."""
    what = "VIEW" if view else "TABLE"
    try:
        yield names
    except BaseException:
        with suppress(duckdb.Error):
            _drop(con, what, names)
        raise
    _drop(con, what, names)


def _drop(con: duckdb.DuckDBPyConnection, what: str, names: tuple[str, ...]) -> None:
    if names:
        con.execute("; ".join(f"DROP {what} IF EXISTS {name}" for name in names))
