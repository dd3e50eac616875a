"""Interests, their Opt-In and Opt-Out groups, and people's status in them."""

from __future__ import annotations

import duckdb

from segpipe.vocabulary import InterestGroupKind, SegmentKind
from segpipe.warehouse import before_images, migrate
from segpipe.warehouse.scratch import scratch
from segpipe.warehouse.sql import quote
from segpipe.warehouse.uploads import UploadContext

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
# What the lookup needs of a membership: its key, status and row id, and (for the
# before-image of the rows that change) every other column. Reading them here once costs less
# than the second join of the changed keys with the whole table that keep would make.
_LOOKED_UP = "rowid AS row_id, *"


def _memberships_of(con: duckdb.DuckDBPyConnection, source: str) -> tuple[str, bool]:
    """The interest_memberships rows the lookup needs, with their row ids; and whether the
    source is small.

    For a small source, the list of its people as a constant filter: DuckDB then skips the
    row groups none of them is in (zone maps), so a small file's cost follows the file, not
    the table. A big source joins the whole table, where a list would only cost more."""
    rows = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    if rows > FEW_ROWS:
        return f"SELECT {_LOOKED_UP} FROM interest_memberships", False
    con.execute(f"SET VARIABLE _statuses_members = (SELECT list(DISTINCT cons_id) FROM {source})")
    return (
        f"SELECT {_LOOKED_UP} FROM interest_memberships "
        # `= ANY(list)` stays a filter on the scan; `IN (SELECT unnest(list))` became a join.
        "WHERE cons_id = ANY(getvariable('_statuses_members'))"
    ), True


def _delete_replaced(con: duckdb.DuckDBPyConnection, changes_table: str, few: bool) -> None:
    """Delete the interest_memberships rows the changes replace, by the row ids the lookup
    found. A few row ids go as a list parameter, which DuckDB matches against the table's row
    ids directly; a semi-join with the changes table would read every row id of the table
    first (README, "Design measurements")."""
    replaced = f"SELECT previous_row FROM {changes_table} WHERE previous_row IS NOT NULL"
    if not few:
        con.execute(f"DELETE FROM interest_memberships WHERE rowid IN ({replaced})")
        return
    (row_ids,) = con.execute(f"SELECT list(previous_row) FROM ({replaced})").fetchone()
    if row_ids:
        con.execute("DELETE FROM interest_memberships WHERE rowid = ANY(?)", [row_ids])


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
    # The lookup also selects the replaced rows as they are (`before_columns`), so their
    # before-images are written from the changes table instead of a second pass over the big table.
    table = "interest_memberships"
    kept = before_images.before_columns(con, table)
    before = ", ".join(f"m.{quote(c)} AS {quote(before_images.BEFORE + c)}" for c in kept)
    memberships, few = _memberships_of(con, source)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {changes_table} AS
        SELECT s.cons_id, s.interest_id, s.status, m.row_id AS previous_row, {before}
        FROM {source} s
        LEFT JOIN ({memberships}) m
          ON m.cons_id = s.cons_id AND m.interest_id = s.interest_id
        WHERE m.status IS DISTINCT FROM s.status
        """
    )
    before_images.keep_looked_up(
        con, upload.upload_id, table, changes_table, "previous_row IS NOT NULL", kept
    )
    changes = con.execute(
        f"""
        INSERT INTO membership_history
        SELECT ?, ?, cons_id, interest_id, NULL, status, ? FROM {changes_table}
        """,
        [upload.upload_id, upload.run_id, upload.at],
    ).fetchone()[0]
    _delete_replaced(con, changes_table, few)
    con.execute(
        "INSERT INTO interest_memberships SELECT cons_id, interest_id, status, ?, ?, ? "
        f"FROM {changes_table}",
        [upload.at, upload.upload_id, upload.at],
    )
    return changes
