"""Interests, their Opt-In and Opt-Out groups, and people's status in them."""

from __future__ import annotations

import duckdb

from segpipe.vocabulary import InterestGroupKind, SegmentKind
from segpipe.warehouse import before_images, migrate
from segpipe.warehouse.scratch import scratch, scratches
from segpipe.warehouse.sql import quote
from segpipe.warehouse.uploads import BATCH_FILE, UploadContext, contexts_table

UPLOADED_CATEGORY = "Uploaded"


def create_named_interests(con: duckdb.DuckDBPyConnection, source: str, upload: UploadContext):
    """Create an Email Interest for every `interest_name` in `source` that matches none (case
    aside), with its Opt-In and Opt-Out groups. Returns how many interests were created."""
    # The ids start above every id ever given (migrate.next_interest_id): an undone interest's
    # id keeps its history. Found by the INSERT itself: most uploads create no interest, and
    # then this is the one statement.
    created = con.execute(
        f"""
        INSERT INTO interests
        SELECT {migrate.next_interest_id_sql()} - 1 + row_number() OVER (ORDER BY first_line),
               name, ?, 'email', ?, ?
        FROM (
            SELECT arg_min(interest_name, _line) AS name, min(_line) AS first_line
            FROM {source}
            WHERE interest_name IS NOT NULL
            GROUP BY lower(interest_name)
        ) AS named
        WHERE NOT EXISTS (SELECT 1 FROM interests i WHERE lower(i.name) = lower(named.name))
        """,
        [UPLOADED_CATEGORY, upload.at, upload.upload_id],
    ).fetchone()[0]
    if created:
        # The new ids are the `created` highest ones.
        first_id = migrate.next_interest_id(con) - created
        migrate.record_interest_ids(con)
        before_images.keep_created(
            con,
            upload.upload_id,
            "interests",
            f"SELECT interest_id FROM interests WHERE interest_id >= {int(first_id)}",
        )
        create_missing_groups(con, upload)
    return created


def create_missing_groups(con: duckdb.DuckDBPyConnection, upload: UploadContext) -> None:
    """Every interest has an Opt-In and an Opt-Out group, each also a segment."""
    with scratch(con, "new_groups") as new_groups:
        first_id = migrate.next_segment_id(con)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {new_groups} AS
            SELECT ?::BIGINT + row_number() OVER (ORDER BY i.interest_id, k.kind) - 1 AS group_id,
                   i.interest_id, k.kind, i.name || k.suffix AS name
            FROM interests i
            CROSS JOIN (VALUES ('{InterestGroupKind.OPT_IN}', ' Opt-In'),
                               ('{InterestGroupKind.OPT_OUT}', ' Opt-Out')) AS k(kind, suffix)
            WHERE NOT EXISTS (
                SELECT 1 FROM interest_groups g
                WHERE g.interest_id = i.interest_id AND g.kind = k.kind
            )
            """,
            [first_id],
        )
        con.execute(
            "INSERT INTO interest_groups "
            f"SELECT group_id, interest_id, kind, name FROM {new_groups}"
        )
        con.execute(
            "INSERT INTO segments (segment_id, name, kind, description, created_at) "
            f"SELECT group_id, name, '{SegmentKind.INTEREST_GROUP}', NULL, ? FROM {new_groups}",
            [upload.at],
        )
        before_images.keep_created(con, upload.upload_id, "interest_groups", f"FROM {new_groups}")
        before_images.keep_created(
            con, upload.upload_id, "segments", f"SELECT group_id AS segment_id FROM {new_groups}"
        )
        migrate.record_segment_ids(con)


# Up to this many rows, the lookup reads only the row groups of the people the rows name.
FEW_ROWS = 100_000
# What an upload's lookup needs of a membership: its key, status and row id. The rows it
# replaces are read whole by their row ids for their before-images: carrying every column of
# the table through the lookup made the changes table twice as wide, and DuckDB spilled it
# (README, "Design measurements").
_LOOKED_UP = "rowid AS row_id, cons_id, interest_id, status"
# A batch's lookup carries the whole row: each file's before-image may be an earlier file's.
_LOOKED_UP_WHOLE = "rowid AS row_id, *"


def _memberships_of(
    con: duckdb.DuckDBPyConnection, source: str, looked_up: str = _LOOKED_UP
) -> tuple[str, bool]:
    """The interest_memberships rows the lookup needs (`looked_up`, SQL columns), with their
    row ids; and whether the source is small.

    For a small source, the list of its people as a constant filter: DuckDB then skips the
    row groups none of them is in (zone maps), so a small file's cost follows the file, not
    the table. A big source joins the whole table, where a list would only cost more."""
    # Counted no further than FEW_ROWS + 1: a big source is not read through for its size.
    rows = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {source} LIMIT {FEW_ROWS + 1})"
    ).fetchone()[0]
    if rows > FEW_ROWS:
        return f"SELECT {looked_up} FROM interest_memberships", False
    con.execute(f"SET VARIABLE _statuses_members = (SELECT list(DISTINCT cons_id) FROM {source})")
    return (
        f"SELECT {looked_up} FROM interest_memberships "
        # `= ANY(list)` stays a filter on the scan; `IN (SELECT unnest(list))` became a join.
        "WHERE cons_id = ANY(getvariable('_statuses_members'))"
    ), True


def _replaced(con: duckdb.DuckDBPyConnection, replaced: str, few: bool) -> tuple[str, list] | None:
    """(an SQL condition on interest_memberships matching the rows the changes replace, its
    parameters), by the row ids the lookup found (`replaced`: SQL selecting them as
    `previous_row`, no NULLs); None when a small source replaces none (no statement to run).
    A few row ids go as a list parameter, which DuckDB matches against the table's row ids
    directly; a semi-join with the changes table would read every row id of the table first
    (README, "Design measurements")."""
    if not few:
        return f"rowid IN ({replaced})", []
    (row_ids,) = con.execute(f"SELECT list(previous_row) FROM ({replaced})").fetchone()
    return ("rowid = ANY(?)", [row_ids]) if row_ids else None


def _delete(con: duckdb.DuckDBPyConnection, replaced: tuple[str, list] | None) -> None:
    """Delete the interest_memberships rows `replaced` (from _replaced) matches."""
    if replaced is not None:
        condition, params = replaced
        con.execute(f"DELETE FROM interest_memberships WHERE {condition}", params)


def _delete_replaced(con: duckdb.DuckDBPyConnection, replaced: str, few: bool) -> None:
    """Delete the interest_memberships rows the changes replace (see _replaced)."""
    _delete(con, _replaced(con, replaced, few))


def set_statuses(con: duckdb.DuckDBPyConnection, source: str, upload: UploadContext) -> int:
    """Apply (cons_id, interest_id, status) rows of `source` to interest_memberships.

    A person is in exactly one of an interest's groups. Only changes are written: a row that
    repeats a person's current status leaves their membership as it was (its `since`, and the
    upload that set it), so applying the same statuses twice changes nothing. Every change is
    written to membership_history. Returns the number of changes.
    The rows replaced are deleted by the row ids the lookup join already found (same
    transaction, so they are stable): one pass over the big table instead of a second semi-join.
    """
    with scratch(con, "changes") as changes_table:
        return _set_statuses(con, source, upload, changes_table)


def _set_statuses(con, source: str, upload: UploadContext, changes_table: str) -> int:
    """set_statuses, the changes looked up into the scratch table `changes_table`."""
    table = "interest_memberships"
    memberships, few = _memberships_of(con, source)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {changes_table} AS
        SELECT s.cons_id, s.interest_id, s.status, m.row_id AS previous_row
        FROM {source} s
        LEFT JOIN ({memberships}) m
          ON m.cons_id = s.cons_id AND m.interest_id = s.interest_id
        WHERE m.status IS DISTINCT FROM s.status
        """
    )
    replaced = _replaced(
        con, f"SELECT previous_row FROM {changes_table} WHERE previous_row IS NOT NULL", few
    )
    before_images.keep_rows(
        con,
        upload.upload_id,
        table,
        replaced,
        created=f"SELECT cons_id, interest_id FROM {changes_table} WHERE previous_row IS NULL",
    )
    changes = con.execute(
        f"""
        INSERT INTO membership_history
        SELECT ?, ?, cons_id, interest_id, NULL, status, ? FROM {changes_table}
        """,
        [upload.upload_id, upload.run_id, upload.at],
    ).fetchone()[0]
    _delete(con, replaced)
    con.execute(
        "INSERT INTO interest_memberships SELECT cons_id, interest_id, status, ?, ?, ? "
        f"FROM {changes_table}",
        [upload.at, upload.upload_id, upload.at],
    )
    return changes


# The columns a membership row's upload sets (see _set_statuses' INSERT): a change made earlier
# in the same batch is the before-image of the next one, built from these.
_WRITTEN = ["status", "since", "upload_id", "updated_at"]


def set_statuses_batch(
    con: duckdb.DuckDBPyConnection, source: str, batch: list[UploadContext]
) -> int:
    """set_statuses for the files of a batch at once: `source` has (BATCH_FILE, cons_id,
    interest_id, status), BATCH_FILE the position of the row's upload in `batch`. The warehouse
    ends as if each file had been applied in turn: a person's status for an interest goes
    through each file's row in file order, every change is written to membership_history and
    to its own upload's before-images (the state the earlier file left, or the row as it was),
    and the membership left is the last change's. One lookup of the big table for the batch.
    Returns the number of changes."""
    if before_images.before_columns(con, "interest_memberships") != _WRITTEN:
        raise RuntimeError("interest_memberships has columns a batch does not write")
    with (
        contexts_table(con, batch) as files,
        scratches(con, "steps", "batch_changes") as (steps, changes),
    ):
        memberships, few = _memberships_of(con, source, _LOOKED_UP_WHOLE)
        originals = ", ".join(f"m.{c} AS original_{c}" for c in _WRITTEN)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {steps} AS
            SELECT s.{BATCH_FILE}, s.cons_id, s.interest_id, s.status,
                   m.row_id AS original_row, {originals},
                   CASE WHEN row_number() OVER turns = 1 THEN m.status
                        ELSE lag(s.status) OVER turns END AS status_before
            FROM {source} s
            LEFT JOIN ({memberships}) m
              ON m.cons_id = s.cons_id AND m.interest_id = s.interest_id
            WINDOW turns AS (PARTITION BY s.cons_id, s.interest_id ORDER BY s.{BATCH_FILE})
            """
        )
        _batch_changes(con, steps, files, changes)
        return _write_batch_changes(con, changes, files, few)


def _batch_changes(con, steps: str, files: str, changes: str) -> None:
    """The steps that change a status, each with the row it replaces: the one an earlier
    file of the batch wrote (`earlier_file`), else the row as it was before the batch."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {changes} AS
        SELECT c.*, f.upload_id AS by_upload, f.run_id AS by_run, f."at" AS by_at,
               e.upload_id AS earlier_upload, e."at" AS earlier_at
        FROM (
            SELECT *, lag({BATCH_FILE}) OVER keyed AS earlier_file,
                   lag(status) OVER keyed AS earlier_status
            FROM {steps} WHERE status IS DISTINCT FROM status_before
            WINDOW keyed AS (PARTITION BY cons_id, interest_id ORDER BY {BATCH_FILE})
        ) c
        JOIN {files} f ON f.{BATCH_FILE} = c.{BATCH_FILE}
        LEFT JOIN {files} e ON e.{BATCH_FILE} = c.earlier_file
        """
    )


def _write_batch_changes(con, changes: str, files: str, few: bool) -> int:
    """Before-images, history, the replaced rows deleted and each key's last change inserted."""
    table = "interest_memberships"
    con.execute(
        f"""
        INSERT INTO {quote(before_images.shadow_of(table))} BY NAME
        SELECT by_upload AS {before_images.UPLOAD}, cons_id, interest_id,
               CASE WHEN earlier_file IS NULL THEN original_row IS NOT NULL ELSE true END
                   AS {before_images.EXISTED},
               CASE WHEN earlier_file IS NULL THEN original_status ELSE earlier_status END
                   AS status,
               CASE WHEN earlier_file IS NULL THEN original_since ELSE earlier_at END AS since,
               CASE WHEN earlier_file IS NULL THEN original_upload_id ELSE earlier_upload END
                   AS upload_id,
               CASE WHEN earlier_file IS NULL THEN original_updated_at ELSE earlier_at END
                   AS updated_at
        FROM {changes}
        """
    )
    count = con.execute(
        f"""
        INSERT INTO membership_history
        SELECT by_upload, by_run, cons_id, interest_id, NULL, status, by_at
        FROM {changes} ORDER BY {BATCH_FILE}
        """
    ).fetchone()[0]
    # A key's row as it was before the batch goes; the rows earlier files wrote were never
    # inserted (only each key's last change is).
    _delete_replaced(
        con,
        f"SELECT original_row AS previous_row FROM {changes} "
        "WHERE earlier_file IS NULL AND original_row IS NOT NULL",
        few,
    )
    con.execute(
        f"""
        INSERT INTO interest_memberships
        SELECT cons_id, interest_id, status, by_at, by_upload, by_at FROM {changes}
        QUALIFY row_number() OVER (PARTITION BY cons_id, interest_id
                                   ORDER BY {BATCH_FILE} DESC) = 1
        """
    )
    return count
