"""`segpipe undo UPLOAD_ID`: reverse one applied upload in one transaction, from the
before-images kept when it was applied (segpipe/warehouse/before_images.py).

What the upload changed goes back to what it was: statuses and memberships, the fields of the
people it updated; the people, interests and segments it created are removed (an interest or
segment something else now uses is kept), its events are deleted. Every membership change the
undo makes is written to membership_history with the undo's run id (`undo:<id>`), and the
upload's status becomes `undone`. When a later applied upload changed the same rows (or
anything of a person this upload created), undo refuses and names those uploads, newest first:
they must be undone first (the rollback rule of lemlist's and Affinity's import history).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import duckdb

from segpipe.warehouse.before_images import (
    KEYS,
    PERSON,
    TABLE,
    column_types,
    json_structure,
)
from segpipe.warehouse.sql import quote, transaction

UNDO_RUN_PREFIX = "undo:"


class Change(StrEnum):
    """membership_history's `change` vocabulary."""

    ENTERED = "entered"
    LEFT = "left"
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    # An undo took away a person's only status in an interest: in neither of its groups.
    CLEARED = "cleared"


class UndoRefused(Exception):
    """The upload cannot be undone; the message says why and what to do."""


@dataclass
class Undone:
    upload_id: str
    file_name: str
    run_id: str
    rows_restored: dict[str, int] = field(default_factory=dict)  # table -> rows put back
    rows_removed: dict[str, int] = field(default_factory=dict)  # table -> rows taken away
    history_rows: int = 0


# Tables restored in this order: memberships before the people, interests and segments they
# name, so that "still in use" is judged on the restored memberships.
ORDER = [
    "interest_memberships",
    "segment_memberships",
    "subscriber_deliveries",
    "interest_xref",
    "constituents",
    "event_properties",
    "interests",
    "interest_groups",
    "segments",
]
# A row the upload created is kept while something outside the upload still uses it.
IN_USE = {
    "interests": """
        EXISTS (SELECT 1 FROM interest_memberships m WHERE m.interest_id = t.interest_id)
        OR EXISTS (SELECT 1 FROM interest_xref x WHERE x.interest_id = t.interest_id)""",
    "interest_groups": "EXISTS (SELECT 1 FROM interests i WHERE i.interest_id = t.interest_id)",
    "segments": """
        EXISTS (SELECT 1 FROM segment_memberships m WHERE m.segment_id = t.segment_id)
        OR EXISTS (SELECT 1 FROM interest_groups g WHERE g.group_id = t.segment_id)""",
    "event_properties": """
        EXISTS (SELECT 1 FROM events e
                WHERE e.event = t.event AND list_contains(map_keys(e.properties), t.property))""",
}


def later_uploads(con: duckdb.DuckDBPyConnection, upload_id: str) -> list[tuple[str, str]]:
    """(upload_id, file name) of the applied uploads after `upload_id` that changed a row it
    changed, or anything of a person it created; newest first."""
    rows = con.execute(
        f"""
        WITH mine AS (SELECT table_name, row_key FROM {TABLE} WHERE upload_id = $x),
        created_people AS (
            SELECT (row_key::JSON->>'{PERSON}')::BIGINT AS person FROM {TABLE}
            WHERE upload_id = $x AND table_name = 'constituents' AND before_row IS NULL
        ),
        touched AS (
            SELECT b.upload_id FROM {TABLE} b
            WHERE b.upload_id <> $x AND b.table_name <> 'event_properties' AND (
                EXISTS (SELECT 1 FROM mine m
                        WHERE m.table_name = b.table_name AND m.row_key = b.row_key)
                OR (b.row_key::JSON->>'{PERSON}')::BIGINT IN (SELECT person FROM created_people))
            UNION
            SELECT e.upload_id FROM events e
            WHERE e.upload_id <> $x AND e.{PERSON} IN (SELECT person FROM created_people)
        )
        SELECT u.upload_id, u.file_name FROM uploads u
        WHERE u.status = 'applied' AND u.upload_id IN (SELECT upload_id FROM touched)
          AND u.applied_at >= (SELECT applied_at FROM uploads WHERE upload_id = $x)
        ORDER BY u.applied_at DESC, u.upload_id DESC
        """,
        {"x": upload_id},
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _refuse_unless_undoable(con: duckdb.DuckDBPyConnection, upload_id: str) -> str:
    found = con.execute(
        "SELECT file_name, status FROM uploads WHERE upload_id = ?", [upload_id]
    ).fetchall()
    if not found:
        raise UndoRefused(f"no upload {upload_id!r} (see `segpipe status`)")
    file_name, status = found[0]
    if status != "applied":
        raise UndoRefused(f"upload {upload_id} ({file_name}) is {status}; only applied uploads")
    later = later_uploads(con, upload_id)
    if later:
        names = ", ".join(f"{uid} ({name})" for uid, name in later)
        raise UndoRefused(
            f"later uploads changed the same rows: {names}; undo them first, newest first"
        )
    return file_name


def _unpack_images(con: duckdb.DuckDBPyConnection, upload_id: str, table: str) -> dict:
    """The temp table _undo_rows: the upload's keys of `table` as typed columns, with
    `before_row` (JSON text, NULL when the upload created the row)."""
    types = column_types(con, table)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _undo_rows AS
        SELECT unnest(json_transform(row_key, ?)), before_row
        FROM {TABLE} WHERE upload_id = ? AND table_name = ?
        """,
        [json_structure(types, KEYS[table]), upload_id, table],
    )
    return types


def _same_key(table: str) -> str:
    return " AND ".join(f"t.{quote(c)} IS NOT DISTINCT FROM k.{quote(c)}" for c in KEYS[table])


def _history_of_undo(con: duckdb.DuckDBPyConnection, upload_id: str, run_id: str, at) -> int:
    """membership_history rows for what the undo is about to change (before it changes it):
    segment entries and exits, and interest statuses going back to their earlier value."""
    written = 0
    _unpack_images(con, upload_id, "segment_memberships")
    written += con.execute(
        f"""
        INSERT INTO membership_history (upload_id, run_id, {PERSON}, interest_id, segment_id,
                                        change, "at")
        SELECT ?, ?, k.{PERSON}, NULL, k.segment_id,
               CASE WHEN k.before_row IS NULL THEN ? ELSE ? END, ?
        FROM _undo_rows k
        WHERE (k.before_row IS NULL) = EXISTS (
            SELECT 1 FROM segment_memberships t WHERE {_same_key("segment_memberships")})
        """,
        [upload_id, run_id, Change.LEFT, Change.ENTERED, at],
    ).fetchall()[0][0]
    _unpack_images(con, upload_id, "interest_memberships")
    written += con.execute(
        f"""
        INSERT INTO membership_history (upload_id, run_id, {PERSON}, interest_id, segment_id,
                                        change, "at")
        SELECT ?, ?, k.{PERSON}, k.interest_id, NULL,
               coalesce(k.before_row::JSON->>'status', ?), ?
        FROM _undo_rows k LEFT JOIN interest_memberships t ON {_same_key("interest_memberships")}
        WHERE t.status IS DISTINCT FROM k.before_row::JSON->>'status'
        """,
        [upload_id, run_id, Change.CLEARED, at],
    ).fetchall()[0][0]
    return written


def _restore(con: duckdb.DuckDBPyConnection, upload_id: str, table: str, result: Undone) -> None:
    """Take away the upload's rows of `table` and put the before-images back."""
    types = _unpack_images(con, upload_id, table)
    created_in_use = ""
    if table in IN_USE:
        created_in_use = f"AND NOT (k.before_row IS NULL AND ({IN_USE[table]}))"
    removed = con.execute(
        f"DELETE FROM {quote(table)} t USING _undo_rows k WHERE {_same_key(table)} {created_in_use}"
    ).fetchall()[0][0]
    restored = con.execute(
        f"INSERT INTO {quote(table)} BY NAME "
        f"SELECT unnest(json_transform(before_row, ?)) FROM _undo_rows "
        f"WHERE before_row IS NOT NULL",
        [json_structure(types)],
    ).fetchall()[0][0]
    result.rows_removed[table] = removed - restored
    result.rows_restored[table] = restored


def _forget_removed_people(con, upload_id: str, run_id: str, at, result: Undone) -> None:
    """People the upload created, now removed: the rule-based memberships a refresh gave them
    (each exit recorded)."""
    gone = f"{PERSON} NOT IN (SELECT {PERSON} FROM constituents)"
    result.history_rows += con.execute(
        f"""
        INSERT INTO membership_history (upload_id, run_id, {PERSON}, interest_id, segment_id,
                                        change, "at")
        SELECT ?, ?, {PERSON}, NULL, segment_id, ?, ? FROM segment_memberships WHERE {gone}
        """,
        [upload_id, run_id, Change.LEFT, at],
    ).fetchall()[0][0]
    con.execute(f"DELETE FROM segment_memberships WHERE {gone}")


def undo_upload(
    con: duckdb.DuckDBPyConnection, upload_id: str, *, at, run_id: str | None = None
) -> Undone:
    """Reverse the applied upload `upload_id` in one transaction (all or nothing). `run_id`
    names the undo (default `undo:<upload_id>`); `at` (UTC, naive) stamps its history rows.
    Raises UndoRefused, changing nothing, when the upload is unknown, not applied, or later
    applied uploads changed the same rows."""
    run_id = UNDO_RUN_PREFIX + (run_id or upload_id)
    with transaction(con):
        file_name = _refuse_unless_undoable(con, upload_id)
        result = Undone(upload_id, file_name, run_id)
        result.history_rows = _history_of_undo(con, upload_id, run_id, at)
        # Its events first: whether an event property is still in use is judged without them.
        result.rows_removed["events"] = con.execute(
            "DELETE FROM events WHERE upload_id = ?", [upload_id]
        ).fetchall()[0][0]
        for table in ORDER:
            _restore(con, upload_id, table, result)
        _forget_removed_people(con, upload_id, run_id, at, result)
        con.execute("DROP TABLE IF EXISTS _undo_rows")
        con.execute("UPDATE uploads SET status = 'undone' WHERE upload_id = ?", [upload_id])
    return result


def undo_summary(result: Undone) -> str:
    changed = {t: n for t, n in result.rows_restored.items() if n}
    removed = {t: n for t, n in result.rows_removed.items() if n}
    parts = [f"{n} {t} row(s) restored" for t, n in changed.items()]
    parts += [f"{n} {t} row(s) removed" for t, n in removed.items()]
    parts.append(f"{result.history_rows} membership change(s) recorded as {result.run_id}")
    return f"undid {result.upload_id} ({result.file_name}): " + "; ".join(parts)
