"""Before-images: what every row an upload changed looked like before it, kept at apply time so
that `segpipe undo` can put it back (lemlist's and Affinity's import rollback, done with the
warehouse's own bookkeeping).

`upload_before_images` holds one row per (upload, table, row key) the upload wrote or deleted:
`row_key` the key columns and `before_row` the whole row as it was, both as JSON text (a table's
columns change over time: constituents gains attribute columns), `before_row` NULL when the upload
created the row. Only the first image of a key per upload counts: that is the state before it.
"""

from __future__ import annotations

import json

import duckdb

from segpipe.warehouse.sql import quote

TABLE = "upload_before_images"
COLUMNS = """
    upload_id VARCHAR NOT NULL, table_name VARCHAR NOT NULL, row_key VARCHAR NOT NULL,
    before_row VARCHAR"""

# The columns that identify a row of each table an upload changes. subscriber_deliveries rows
# have no key of their own: the whole row is its identity.
PERSON = "member_id"
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
}  # fmt: skip


def column_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name -> DuckDB type of `table`, in table order."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return dict(rows)


def key_json(table: str, alias: str, types: dict[str, str]) -> str:
    """SQL for the JSON text of the key of the row `alias` of `table` (typed as the table's)."""
    fields = ", ".join(
        f"{quote(column)} := {alias}.{quote(column)}::{types[column]}" for column in KEYS[table]
    )
    return f"to_json(struct_pack({fields}))::VARCHAR"


def json_structure(types: dict[str, str], columns: tuple[str, ...] | None = None) -> str:
    """The json_transform structure that reads JSON text back into these columns' types."""
    wanted = columns or tuple(types)
    return json.dumps({column: types[column] for column in wanted})


def keep(con: duckdb.DuckDBPyConnection, upload_id: str | None, table: str, keys: str) -> None:
    """Record the current rows of `table` (or that there was none) for every key in `keys` (SQL
    selecting the key columns of the rows about to be written or deleted); call it before the
    change, inside the upload's transaction. Nothing is kept for changes made by no upload."""
    if upload_id is None:
        return
    types = column_types(con, table)
    key_columns = KEYS[table]
    same_key = " AND ".join(
        f"t.{quote(c)} IS NOT DISTINCT FROM k.{quote(c)}::{types[c]}" for c in key_columns
    )
    listed = ", ".join(quote(c) for c in key_columns)
    con.execute(
        f"""
        INSERT INTO {TABLE}
        SELECT DISTINCT ON (row_key) ?, ?, row_key, before_row FROM (
            SELECT {key_json(table, "k", types)} AS row_key,
                   CASE WHEN t.rowid IS NOT NULL THEN to_json(t)::VARCHAR END AS before_row
            FROM (SELECT DISTINCT {listed} FROM ({keys})) k
            LEFT JOIN {quote(table)} t ON {same_key}
        ) images
        WHERE NOT EXISTS (SELECT 1 FROM {TABLE} b
                          WHERE b.upload_id = ? AND b.table_name = ? AND b.row_key = images.row_key)
        """,
        [upload_id, table, upload_id, table],
    )


def keep_created(
    con: duckdb.DuckDBPyConnection, upload_id: str | None, table: str, keys: str
) -> None:
    """Record that the upload created the rows of `table` with the keys in `keys` (SQL), after
    inserting them: there was nothing before."""
    if upload_id is None:
        return
    types = column_types(con, table)
    listed = ", ".join(quote(c) for c in KEYS[table])
    con.execute(
        f"""
        INSERT INTO {TABLE}
        SELECT DISTINCT ?, ?, {key_json(table, "k", types)}, NULL
        FROM (SELECT DISTINCT {listed} FROM ({keys})) k
        WHERE NOT EXISTS (SELECT 1 FROM {TABLE} b
                          WHERE b.upload_id = ? AND b.table_name = ?
                            AND b.row_key = {key_json(table, "k", types)})
        """,
        [upload_id, table, upload_id, table],
    )
