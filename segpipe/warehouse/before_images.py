"""Before-images: what every row an upload changed looked like before it, kept at apply time so
that `segpipe undo` can put it back (lemlist's and Affinity's import rollback, done with the
warehouse's own bookkeeping).

Each table an upload changes has a shadow table `upload_before_<table>`: the table's own columns
plus `_undo_upload_id` (the upload) and `_undo_existed` (false when the upload created the row:
only its key columns are set). One row per key the upload wrote or deleted, as it was before.
The shadow follows its table's columns (constituents gains and widens attribute columns), so the
images stay typed: writing them is a columnar insert (JSON text per row measured slower).
"""

from __future__ import annotations

import duckdb

from segpipe.warehouse.scratch import scratch
from segpipe.warehouse.sql import quote

PREFIX = "upload_before_"
UPLOAD = "_undo_upload_id"
EXISTED = "_undo_existed"

# The columns that identify a row of each table an upload changes. subscriber_deliveries rows
# have no key of their own: the whole row is its identity.
PERSON = "cons_id"  # the person key of every table (SPEC 2)
KEYS: dict[str, tuple[str, ...]] = {
    "constituents": (PERSON,),
    "interests": ("interest_id",),
    "interest_groups": ("group_id",),
    "interest_xref": ("foreign_source", "foreign_value"),
    "interest_memberships": (PERSON, "interest_id"),
    "segments": ("segment_id",),
    "segment_memberships": ("segment_id", PERSON),
    "event_properties": ("event", "property"),
    "subscriber_deliveries": (
        "domain", "delivery_date", "part", "upload_id", "segment_id", PERSON
    ),
    # An identifier, not a person: erasure clears these images by identifier.
    "suppressions": ("identifier_kind", "identifier", "channel"),
}  # fmt: skip


def shadow_of(table: str) -> str:
    return PREFIX + table


def same_key(table: str, left: str, right: str) -> str:
    """SQL: rows `left` and `right` have the same key of `table` (NULLs equal)."""
    return " AND ".join(
        f"{left}.{quote(c)} IS NOT DISTINCT FROM {right}.{quote(c)}" for c in KEYS[table]
    )


def _ensure_shadow(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """The shadow of `table` with every column `table` has now, of the same type; returns the
    table's columns. One catalog query when nothing has to change (the common case: a small
    upload pays ~10 ms for it)."""
    shadow = shadow_of(table)
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND database_name = current_database() "
        "AND table_name IN (?, ?) ORDER BY column_index",
        [table, shadow],
    ).fetchall()
    types = {column: kind for name, column, kind in rows if name == table}
    kept = {column: kind for name, column, kind in rows if name == shadow}
    if not kept:
        con.execute(
            f"CREATE TABLE {quote(shadow)} AS "
            f"SELECT NULL::VARCHAR AS {UPLOAD}, NULL::BOOLEAN AS {EXISTED}, * "
            f"FROM {quote(table)} LIMIT 0"
        )
        return types
    for column, kind in types.items():
        if column not in kept:
            con.execute(f"ALTER TABLE {quote(shadow)} ADD COLUMN {quote(column)} {kind}")
        elif kept[column] != kind:
            con.execute(f"ALTER TABLE {quote(shadow)} ALTER COLUMN {quote(column)} TYPE {kind}")
    return types


def _keys(table: str, keys: str, types: dict[str, str]) -> str:
    listed = ", ".join(f"{quote(c)}::{types[c]} AS {quote(c)}" for c in KEYS[table])
    return f"(SELECT DISTINCT {listed} FROM ({keys}))"


def keep(con: duckdb.DuckDBPyConnection, upload_id: str | None, table: str, keys: str) -> None:
    """Record the current rows of `table` (or that there was none) for every key in `keys` (SQL
    selecting the key columns of the rows about to be written or deleted). Call it once per
    table and upload, before the change, inside the upload's transaction. Changes made by no
    upload (a refresh) keep nothing."""
    if upload_id is None:
        return
    types = _ensure_shadow(con, table)
    columns = [f"k.{quote(c)} AS {quote(c)}" for c in KEYS[table]]
    columns += [f"t.{quote(c)} AS {quote(c)}" for c in types if c not in KEYS[table]]
    with scratch(con, "keep_keys") as kept_keys:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {kept_keys} AS {_keys(table, keys, types)}")
        con.execute(
            f"""
            INSERT INTO {quote(shadow_of(table))} BY NAME
            SELECT ? AS {UPLOAD}, t.rowid IS NOT NULL AS {EXISTED}, {", ".join(columns)}
            FROM {kept_keys} k
            LEFT JOIN ({_rows_of(con, table, kept_keys)}) t ON {same_key(table, "t", "k")}
            """,
            [upload_id],
        )


def before_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The columns of `table` but its key (its shadow made to follow them)."""
    return [c for c in _ensure_shadow(con, table) if c not in KEYS[table]]


def keep_rows(
    con: duckdb.DuckDBPyConnection,
    upload_id: str | None,
    table: str,
    rows: tuple[str, list] | None,
    created: str,
) -> None:
    """Record before-images when the caller's own lookup of `table` already found the rows the
    change replaces: `rows` (an SQL condition on `table`, typically on its row ids, and its
    parameters; None when it replaces none) selects them, read as they are; `created` (SQL
    selecting key columns, one row a key) the keys that have no row yet. Spares keep's join of
    the keys with the whole table. Call it before the change, inside the upload's
    transaction."""
    if upload_id is None:
        return
    _ensure_shadow(con, table)
    shadow = quote(shadow_of(table))
    if rows is not None:
        condition, params = rows
        con.execute(
            f"INSERT INTO {shadow} BY NAME "
            f"SELECT ? AS {UPLOAD}, true AS {EXISTED}, * FROM {quote(table)} WHERE {condition}",
            [upload_id, *params],
        )
    keys = ", ".join(quote(c) for c in KEYS[table])
    con.execute(
        f"INSERT INTO {shadow} BY NAME "
        f"SELECT ? AS {UPLOAD}, false AS {EXISTED}, {keys} FROM ({created})",
        [upload_id],
    )


# Up to this many keys, the table is read only where their people are (as set_statuses does).
FEW_KEYS = 100_000
# The tables whose every row names a person (subscriber_deliveries has rows that name none).
PERSON_NOT_NULL = {"constituents", "interest_memberships", "segment_memberships"}


def _rows_of(con: duckdb.DuckDBPyConnection, table: str, keys: str) -> str:
    """The rows of `table` the keys in the table `keys` may name. For a few keys of a person-keyed
    table, their people as a constant list: DuckDB then skips the row groups none of them is in
    instead of scanning the whole table (a 100-row file against millions of memberships)."""
    if table not in PERSON_NOT_NULL:
        return f"SELECT rowid, * FROM {quote(table)}"
    if con.execute(f"SELECT count(*) FROM {keys}").fetchall()[0][0] > FEW_KEYS:
        return f"SELECT rowid, * FROM {quote(table)}"
    con.execute(f"SET VARIABLE _keep_people = (SELECT list(DISTINCT {PERSON}) FROM {keys})")
    return f"SELECT rowid, * FROM {quote(table)} WHERE {PERSON} = ANY(getvariable('_keep_people'))"


def keep_created(
    con: duckdb.DuckDBPyConnection, upload_id: str | None, table: str, keys: str
) -> None:
    """Record that the upload created the rows of `table` with the keys in `keys` (SQL): there
    was nothing before. Called after inserting them."""
    if upload_id is None:
        return
    types = _ensure_shadow(con, table)
    con.execute(
        f"INSERT INTO {quote(shadow_of(table))} BY NAME "
        f"SELECT ? AS {UPLOAD}, false AS {EXISTED}, * FROM {_keys(table, keys, types)}",
        [upload_id],
    )


def shadows(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables that have before-images so far, in KEYS order."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND starts_with(table_name, ?)",
        [PREFIX],
    ).fetchall()
    present = {row[0].removeprefix(PREFIX) for row in rows}
    return [table for table in KEYS if table in present]
