"""`segpipe undo UPLOAD_ID`: reverse one applied upload in one transaction, from the
before-images kept when it was applied (segpipe/warehouse/before_images.py).

What the upload changed goes back to what it was: statuses and memberships, the fields of the
people it updated; the people, interests and segments it created are removed (an interest or
segment something else now uses is kept), its events are deleted, the suppressions it added
are lifted and those it lifted are back. Every membership change the undo makes is written to
membership_history with the undo's run id (`undo:<id>`), every suppression it adds or lifts to
suppression_history under that run id, and the upload's status becomes `undone`. When a later
applied upload changed the same rows (or anything of a person this upload created), undo
refuses and names those uploads, newest first: they must be undone first (the rollback rule of
lemlist's and Affinity's import history).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import duckdb

from segpipe.ingest.masking import display_name
from segpipe.vocabulary import InterestStatus, UploadStatus
from segpipe.warehouse.before_images import (
    EXISTED,
    KEYS,
    PERSON,
    UPLOAD,
    same_key,
    shadow_of,
    shadows,
)
from segpipe.warehouse.catalog import table_columns
from segpipe.warehouse.scratch import scratch
from segpipe.warehouse.sql import quote, transaction
from segpipe.warehouse.suppressions import SuppressionAction

UNDO_RUN_PREFIX = "undo:"


class Change(StrEnum):
    """membership_history's `change` vocabulary."""

    ENTERED = "entered"
    LEFT = "left"
    OPTED_IN = InterestStatus.OPTED_IN.value
    OPTED_OUT = InterestStatus.OPTED_OUT.value
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
    suppression_history_rows: int = 0


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
    "suppressions",
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


def _touched_by_others(con: duckdb.DuckDBPyConnection, tables: list[str]) -> str:
    """SQL: the other uploads' ids with an image of a key $x has an image of, or of anything of
    a person $x created (event properties aside: a catalogue, not anyone's change)."""
    created = (
        f"SELECT {PERSON} FROM {quote(shadow_of('constituents'))} "
        f"WHERE {UPLOAD} = $x AND NOT {EXISTED}"
        if "constituents" in tables
        else f"SELECT NULL::BIGINT AS {PERSON} WHERE false"
    )
    parts = [f"SELECT upload_id AS {UPLOAD} FROM events WHERE {PERSON} IN ({created})"]
    for table in tables:
        if table == "event_properties":
            continue
        shadow = quote(shadow_of(table))
        parts.append(
            f"SELECT b.{UPLOAD} FROM {shadow} b JOIN (SELECT * FROM {shadow} WHERE {UPLOAD} = $x)"
            f" m ON {same_key(table, 'b', 'm')}"
        )
        if PERSON in KEYS[table]:
            parts.append(f"SELECT {UPLOAD} FROM {shadow} WHERE {PERSON} IN ({created})")
    return " UNION ".join(parts)


def later_uploads(con: duckdb.DuckDBPyConnection, upload_id: str) -> list[tuple[str, str]]:
    """(upload_id, file name) of the applied uploads after `upload_id` that changed a row it
    changed, or anything of a person it created; newest first."""
    rows = con.execute(
        f"""
        SELECT u.upload_id, u.file_name FROM uploads u
        WHERE u.status = '{UploadStatus.APPLIED}' AND u.upload_id <> $x
          AND u.upload_id IN ({_touched_by_others(con, shadows(con))})
          AND u.applied_at >= (SELECT applied_at FROM uploads WHERE upload_id = $x)
        ORDER BY u.applied_at DESC, u.upload_id DESC
        """,
        {"x": upload_id},
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _kept_anything(con: duckdb.DuckDBPyConnection, upload_id: str) -> bool:
    """Whether the upload left a before-image in any table, or events (deleted by upload)."""
    kept = [f"SELECT 1 FROM {quote(shadow_of(t))} WHERE {UPLOAD} = $x" for t in shadows(con)]
    kept.append("SELECT 1 FROM events WHERE upload_id = $x")
    query = f"SELECT EXISTS ({' UNION ALL '.join(kept)})"
    return con.execute(query, {"x": upload_id}).fetchall()[0][0]


def _refuse_unless_undoable(con: duckdb.DuckDBPyConnection, upload_id: str) -> str:
    found = con.execute(
        "SELECT file_name, status FROM uploads WHERE upload_id = ?", [upload_id]
    ).fetchall()
    if not found:
        raise UndoRefused(f"no upload {upload_id!r} (see `segpipe status`)")
    file_name, status = found[0]
    shown = display_name(file_name)  # the messages reach the terminal and the event log
    if status != UploadStatus.APPLIED:
        raise UndoRefused(f"upload {upload_id} ({shown}) is {status}; only applied uploads")
    # An upload applied before segpipe kept before-images (of its kind) has none: undo would
    # say it undid it and change nothing.
    if not _kept_anything(con, upload_id):
        raise UndoRefused(
            f"upload {upload_id} ({shown}) has no record of what it changed (applied "
            "before segpipe kept one, or it changed nothing), so undo cannot put anything back; "
            "correct it with a new file instead"
        )
    later = later_uploads(con, upload_id)
    if later:
        names = ", ".join(f"{uid} ({display_name(name)})" for uid, name in later)
        raise UndoRefused(
            f"later uploads changed the same rows: {names}; undo them first, newest first"
        )
    return file_name


def _images(con: duckdb.DuckDBPyConnection, upload_id: str, table: str, rows: str) -> None:
    """The scratch table `rows`: the upload's before-images of `table` (none if it has no
    shadow yet)."""
    if table in shadows(con):
        source = f"SELECT * FROM {quote(shadow_of(table))} WHERE {UPLOAD} = ?"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {rows} AS {source}", [upload_id])
    else:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {rows} AS "
            f"SELECT NULL::VARCHAR AS {UPLOAD}, NULL::BOOLEAN AS {EXISTED}, * "
            f"FROM {quote(table)} LIMIT 0"
        )


def _same_key(table: str) -> str:
    return same_key(table, "t", "k")


def _history_of_undo(con: duckdb.DuckDBPyConnection, upload_id: str, run_id: str, at, rows) -> int:
    """membership_history rows for what the undo is about to change (before it changes it):
    segment entries and exits, and interest statuses going back to their earlier value."""
    written = 0
    _images(con, upload_id, "segment_memberships", rows)
    written += con.execute(
        f"""
        INSERT INTO membership_history (upload_id, run_id, {PERSON}, interest_id, segment_id,
                                        change, "at")
        SELECT ?, ?, k.{PERSON}, NULL, k.segment_id,
               CASE WHEN k.{EXISTED} THEN ? ELSE ? END, ?
        FROM {rows} k
        WHERE k.{EXISTED} <> EXISTS (
            SELECT 1 FROM segment_memberships t WHERE {_same_key("segment_memberships")})
        """,
        [upload_id, run_id, Change.ENTERED, Change.LEFT, at],
    ).fetchall()[0][0]
    _images(con, upload_id, "interest_memberships", rows)
    written += con.execute(
        f"""
        INSERT INTO membership_history (upload_id, run_id, {PERSON}, interest_id, segment_id,
                                        change, "at")
        SELECT ?, ?, k.{PERSON}, k.interest_id, NULL,
               CASE WHEN k.{EXISTED} THEN k.status ELSE ? END, ?
        FROM {rows} k LEFT JOIN interest_memberships t ON {_same_key("interest_memberships")}
        WHERE t.status IS DISTINCT FROM CASE WHEN k.{EXISTED} THEN k.status END
        """,
        [upload_id, run_id, Change.CLEARED, at],
    ).fetchall()[0][0]
    return written


def _suppression_history_of_undo(con, upload_id: str, run_id: str, at, rows) -> int:
    """suppression_history rows for what the undo is about to change (before it changes it):
    an `add` for each suppression it puts back as it was, a `remove` for each it lifts."""
    if "suppressions" not in shadows(con):
        return 0
    _images(con, upload_id, "suppressions", rows)
    return con.execute(
        f"""
        INSERT INTO suppression_history
            (identifier_kind, identifier, channel, reason, action, upload_id, "at")
        SELECT k.identifier_kind, k.identifier, k.channel, CASE WHEN k.{EXISTED} THEN k.reason END,
               CASE WHEN k.{EXISTED} THEN ? ELSE ? END, ?, ?
        FROM {rows} k LEFT JOIN suppressions t ON {_same_key("suppressions")}
        WHERE CASE WHEN k.{EXISTED}
                   THEN t.identifier IS NULL OR t.reason IS DISTINCT FROM k.reason
                        OR t.since IS DISTINCT FROM k.since
                   ELSE t.identifier IS NOT NULL END
        """,
        [SuppressionAction.ADD, SuppressionAction.REMOVE, run_id, at],
    ).fetchall()[0][0]


def _restore(con, upload_id: str, table: str, result: Undone, rows: str) -> None:
    """Take away the rows of `table` the upload created and put the before-images back. The
    counts are what a reader of the table sees change: a created row still there and taken
    away, a row back to values it no longer had (an image of a row that is as it was restores
    nothing; a created row already gone, or kept in use, removes nothing)."""
    if table not in shadows(con):
        return  # no upload ever changed it
    _images(con, upload_id, table, rows)
    kept = table_columns(con, shadow_of(table))
    common = [quote(c) for c in table_columns(con, table) if c in kept]
    as_before = " AND ".join(f"t.{c} IS NOT DISTINCT FROM k.{c}" for c in common)
    # Counted before anything moves: afterwards every image is back.
    result.rows_restored[table] = con.execute(
        f"""
        SELECT count(*) FROM {rows} k WHERE k.{EXISTED}
          AND NOT EXISTS (SELECT 1 FROM {quote(table)} t WHERE {_same_key(table)} AND {as_before})
        """
    ).fetchall()[0][0]
    created = f"NOT k.{EXISTED}"
    if table in IN_USE:
        created += f" AND NOT ({IN_USE[table]})"
    result.rows_removed[table] = con.execute(
        f"DELETE FROM {quote(table)} t USING {rows} k WHERE {_same_key(table)} AND {created}"
    ).fetchall()[0][0]
    con.execute(
        f"DELETE FROM {quote(table)} t USING {rows} k WHERE {_same_key(table)} AND k.{EXISTED}"
    )
    columns = ", ".join(common)
    con.execute(
        f"INSERT INTO {quote(table)} ({columns}) SELECT {columns} FROM {rows} WHERE {EXISTED}"
    )


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
    left = con.execute(f"DELETE FROM segment_memberships WHERE {gone}").fetchall()[0][0]
    removed = result.rows_removed.get("segment_memberships", 0)
    result.rows_removed["segment_memberships"] = removed + left


def undo_upload(
    con: duckdb.DuckDBPyConnection, upload_id: str, *, at, run_id: str | None = None
) -> Undone:
    """Reverse the applied upload `upload_id` in one transaction (all or nothing). `run_id`
    names the undo (default `undo:<upload_id>`); `at` (UTC, naive) stamps its history rows.
    Raises UndoRefused, changing nothing, when the upload is unknown, not applied, or later
    applied uploads changed the same rows."""
    run_id = UNDO_RUN_PREFIX + (run_id or upload_id)
    with transaction(con), scratch(con, "undo_rows") as rows:
        file_name = _refuse_unless_undoable(con, upload_id)
        result = Undone(upload_id, file_name, run_id)
        result.history_rows = _history_of_undo(con, upload_id, run_id, at, rows)
        result.suppression_history_rows = _suppression_history_of_undo(
            con, upload_id, run_id, at, rows
        )
        # Its events first: whether an event property is still in use is judged without them.
        result.rows_removed["events"] = con.execute(
            "DELETE FROM events WHERE upload_id = ?", [upload_id]
        ).fetchall()[0][0]
        for table in ORDER:
            _restore(con, upload_id, table, result, rows)
        _forget_removed_people(con, upload_id, run_id, at, result)
        con.execute(
            f"UPDATE uploads SET status = '{UploadStatus.UNDONE}' WHERE upload_id = ?", [upload_id]
        )
    return result


def undo_summary(result: Undone) -> str:
    changed = {t: n for t, n in result.rows_restored.items() if n}
    removed = {t: n for t, n in result.rows_removed.items() if n}
    parts = [f"{n} {t} row(s) restored" for t, n in changed.items()]
    parts += [f"{n} {t} row(s) removed" for t, n in removed.items()]
    parts.append(f"{result.history_rows} membership change(s) recorded as {result.run_id}")
    if result.suppression_history_rows:
        parts.append(
            f"{result.suppression_history_rows} suppression change(s) in suppression_history"
        )
    return f"undid {result.upload_id} ({display_name(result.file_name)}): " + "; ".join(parts)
