"""Bringing a warehouse made by an older segpipe to the current schema (schema.SCHEMA_VERSION).

The version lives in `segpipe_meta` (key `schema_version`). A warehouse with public tables but no
`segpipe_meta` is version 1, the layout before Luminate's two identifiers: its person key
`member_id BIGINT` becomes `cons_id` in every table, and `constituents` gains the text
`member_id`, filled with the old number as text, so files that named people by their old member id
still find them. The whole migration is one transaction: a failure leaves version 1 untouched.
"""

from __future__ import annotations

import duckdb

from segpipe.warehouse.catalog import table_columns
from segpipe.warehouse.schema import (
    INDEXES,
    SCHEMA_VERSION,
    TABLES,
    ensure_schema,
    schema_fingerprint,
)
from segpipe.warehouse.sql import scalar, transaction

VERSION_KEY = "schema_version"
# The layout ensure_current last brought the warehouse to (schema.schema_fingerprint).
FINGERPRINT_KEY = "schema_fingerprint"
# Every version-1 table that carried the person key, renamed member_id -> cons_id.
PERSON_KEY_TABLES = (
    "constituents",
    "interest_memberships",
    "segment_memberships",
    "membership_history",
    "sync_members",
    "events",
    "subscriber_deliveries",
)


class WarehouseVersionError(RuntimeError):
    """The warehouse was written by a newer segpipe; the message says what to do."""


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        scalar(
            con,
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_name = ?",
            [name],
        )
    )


def stored_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The warehouse's schema version; None for a new, empty warehouse."""
    if _has_table(con, "segpipe_meta"):
        value = scalar(con, "SELECT value FROM segpipe_meta WHERE key = ?", [VERSION_KEY])
        if value is not None:
            return int(value)
    return 1 if _has_table(con, "constituents") else None


def ensure_current(con: duckdb.DuckDBPyConnection) -> None:
    """The public tables in place at SCHEMA_VERSION: an older warehouse is migrated first, in one
    transaction; a newer one is refused (WarehouseVersionError). Stamps the layout's
    fingerprint, so later opens can tell in one query that there is nothing to do."""
    upgrade(con)
    ensure_schema(con)
    record_version(con)
    seed_high_waters(con)
    _set(con, FINGERPRINT_KEY, schema_fingerprint())


def is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the warehouse has exactly the layout this segpipe creates (one query, no DDL):
    stamped by ensure_current with this SCHEMA_VERSION and schema_fingerprint, and its id
    high-water marks seeded (seed_high_waters)."""
    try:
        stamped = con.execute(
            "SELECT max(value) FILTER (key = ?), max(value) FILTER (key = ?), "
            "count(DISTINCT key) FILTER (key IN ?) FROM segpipe_meta",
            [VERSION_KEY, FINGERPRINT_KEY, list(_SEEN)],
        ).fetchall()[0]
    except duckdb.CatalogException:  # a new warehouse, or one older than segpipe_meta
        return False
    return stamped == (str(SCHEMA_VERSION), schema_fingerprint(), len(_SEEN))


def upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Migrate an older warehouse to schema.SCHEMA_VERSION; refuse a newer one.

    Raises WarehouseVersionError for a warehouse newer than this segpipe, or when the migration
    fails (then nothing was changed)."""
    version = stored_version(con)
    if version is None or version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise WarehouseVersionError(
            f"this warehouse has schema version {version}, newer than this segpipe knows "
            f"({SCHEMA_VERSION}): upgrade segpipe, or point --data-dir at another warehouse"
        )
    try:
        with transaction(con):
            _migrate_1_to_2(con)
    except duckdb.Error as error:
        raise WarehouseVersionError(
            f"could not migrate this warehouse from schema version {version} to "
            f"{SCHEMA_VERSION}, and changed nothing ({error}). An index of your own on one of "
            "segpipe's tables blocks the migration: drop it (DROP INDEX name) and run again"
        ) from error


def _migrate_1_to_2(con: duckdb.DuckDBPyConnection) -> None:
    """Rename the person key, add the text member_id; inside the caller's transaction.

    DuckDB refuses ALTER TABLE on a table an index or view depends on: both are dropped first
    and recreated by ensure_schema afterwards."""
    con.execute("DROP VIEW IF EXISTS segment_members")
    for index in INDEXES:
        con.execute(f'DROP INDEX IF EXISTS "{index}"')
    for table in PERSON_KEY_TABLES:
        if _has_table(con, table) and "member_id" in table_columns(con, table):
            con.execute(f'ALTER TABLE "{table}" RENAME COLUMN member_id TO cons_id')
    con.execute("ALTER TABLE constituents ADD COLUMN member_id VARCHAR")
    con.execute("UPDATE constituents SET member_id = cons_id::VARCHAR")
    con.execute(f"CREATE TABLE IF NOT EXISTS segpipe_meta ({TABLES['segpipe_meta']})")
    record_cons_ids(con)
    _set(con, VERSION_KEY, 2)  # the layout this function produces, whatever SCHEMA_VERSION is


def _set(con: duckdb.DuckDBPyConnection, key: str, value) -> None:
    con.execute("DELETE FROM segpipe_meta WHERE key = ?", [key])
    con.execute("INSERT INTO segpipe_meta VALUES (?, ?)", [key, str(value)])


def record_version(con: duckdb.DuckDBPyConnection) -> None:
    """Stamp a new warehouse with the current version (no-op once stamped)."""
    if scalar(con, "SELECT count(*) FROM segpipe_meta WHERE key = ?", [VERSION_KEY]) == 0:
        _set(con, VERSION_KEY, SCHEMA_VERSION)


HIGH_WATER_KEY = "cons_id_high_water"
# The same for segment ids (interest groups are segments too) and interest ids: a deleted
# segment's id (segment delete, an undo, a rule gone from segments.yaml) keeps its history,
# its destinations' sync baselines and deliveries; given again, a new segment would inherit them.
SEGMENT_HIGH_WATER_KEY = "segment_id_high_water"
INTEREST_HIGH_WATER_KEY = "interest_id_high_water"
# Where an id may still be seen after its row is gone: the high-water mark of a warehouse made
# before it starts above all of these (seed_high_waters).
_SEEN = {
    SEGMENT_HIGH_WATER_KEY: (
        ("segments", "segment_id"),
        ("interest_groups", "group_id"),
        ("segment_memberships", "segment_id"),
        ("membership_history", "segment_id"),
        ("syncs", "segment_id"),
        ("sync_members", "segment_id"),
        ("subscriber_deliveries", "segment_id"),
    ),
    INTEREST_HIGH_WATER_KEY: (
        ("interests", "interest_id"),
        ("interest_groups", "interest_id"),
        ("interest_xref", "interest_id"),
        ("interest_memberships", "interest_id"),
        ("membership_history", "interest_id"),
    ),
}


def _next(con: duckdb.DuckDBPyConnection, key: str, table: str, column: str) -> int:
    """The first id never given: above every current one in `table` and the mark `key`."""
    return scalar(con, f"SELECT {next_id_sql(key, table, column)}")


def next_id_sql(key: str, table: str, column: str) -> str:
    """SQL for _next, to put inside a statement that inserts (one statement, not three)."""
    return (
        f"(greatest((SELECT max(value::BIGINT) FROM segpipe_meta WHERE key = '{key}'), "
        f'(SELECT max("{column}") FROM "{table}"), 0) + 1)'
    )


def next_cons_id(con: duckdb.DuckDBPyConnection) -> int:
    """The first cons_id never given: above every current one and the recorded high-water mark,
    so deleting (or forgetting) the newest person never frees an id."""
    return _next(con, HIGH_WATER_KEY, "constituents", "cons_id")


def record_cons_ids(con: duckdb.DuckDBPyConnection) -> None:
    """Remember the highest cons_id given so far (inside the applying transaction)."""
    _set(con, HIGH_WATER_KEY, next_cons_id(con) - 1)


def next_segment_id(con: duckdb.DuckDBPyConnection) -> int:
    """The first segment_id never given (interest groups included), deleted segments' too."""
    return _next(con, SEGMENT_HIGH_WATER_KEY, "segments", "segment_id")


def record_segment_ids(con: duckdb.DuckDBPyConnection) -> None:
    """Remember the highest segment_id given so far (inside the creating transaction)."""
    _set(con, SEGMENT_HIGH_WATER_KEY, next_segment_id(con) - 1)


def next_interest_id_sql() -> str:
    """SQL for next_interest_id."""
    return next_id_sql(INTEREST_HIGH_WATER_KEY, "interests", "interest_id")


def next_interest_id(con: duckdb.DuckDBPyConnection) -> int:
    """The first interest_id never given, undone interests' too."""
    return _next(con, INTEREST_HIGH_WATER_KEY, "interests", "interest_id")


def record_interest_ids(con: duckdb.DuckDBPyConnection) -> None:
    """Remember the highest interest_id given so far (inside the creating transaction)."""
    _set(con, INTEREST_HIGH_WATER_KEY, next_interest_id(con) - 1)


def seed_high_waters(con: duckdb.DuckDBPyConnection) -> None:
    """Give a warehouse that has no segment or interest high-water mark yet (new, or made by a
    segpipe before them) one above every id still seen anywhere, so an id its deletes freed
    before is not given again either. Once per warehouse: is_current requires the marks."""
    for key, seen in _SEEN.items():
        if scalar(con, "SELECT count(*) FROM segpipe_meta WHERE key = ?", [key]):
            continue
        # After ensure_schema: every table is there.
        highest = " UNION ALL ".join(f'SELECT max("{c}") FROM "{t}"' for t, c in seen)
        _set(con, key, scalar(con, f"SELECT coalesce(max(m), 0) FROM ({highest}) AS t(m)"))
