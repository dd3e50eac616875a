"""The warehouse's columns: the public tables' as the schema definitions (warehouse/schema.py)
declare them, and any table's as a warehouse has it now (attributes added by uploads)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import duckdb

from segpipe.warehouse.schema import PUBLIC_TABLES, ensure_schema


@dataclass(frozen=True)
class TableColumn:
    name: str
    type: str  # DuckDB's type name: BIGINT, VARCHAR, TIMESTAMP, MAP(VARCHAR, VARCHAR), ...
    nullable: bool


@cache
def public_columns() -> dict[str, tuple[TableColumn, ...]]:
    """Each public table (and the `segment_members` view) -> its columns in declared order.

    Read back from DuckDB after creating the schema in an in-memory database, so the answer is
    the schema definitions themselves (views included), not a second copy of them."""
    con = duckdb.connect(":memory:")
    try:
        ensure_schema(con)
        rows = con.execute(
            "SELECT table_name, column_name, data_type, is_nullable = 'YES' "
            "FROM information_schema.columns WHERE table_schema = 'main' "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
    finally:
        con.close()
    columns: dict[str, list[TableColumn]] = {}
    for table, name, type_, nullable in rows:
        columns.setdefault(table, []).append(TableColumn(name, type_, nullable))
    return {table: tuple(columns[table]) for table in PUBLIC_TABLES if table in columns}


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name -> DuckDB type of the warehouse's table `table` as it is now, in table order
    (empty if there is no such table). One catalog query."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return dict(rows)


def constituent_columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Column name -> DuckDB type of `constituents`: the core columns, then the attribute
    columns uploads have added (SPEC section 2 "Attributes"), in table order."""
    return table_columns(con, "constituents")
