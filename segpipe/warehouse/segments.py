"""Reading and changing segments and their members.

Every change of membership goes through `replace_members` (a segment's members become exactly a
given set: subscriber deliveries, rule-based segments) or `change_members` (explicit adds and
removes: manual lists), and each entry and exit is written to membership_history. Callers run
them inside their own transaction, so readers see a segment before or after, never half-way.
"""

from __future__ import annotations

import duckdb
import polars as pl

from segpipe.ingest.masking import mask_expr
from segpipe.vocabulary import SegmentKind
from segpipe.warehouse import before_images, migrate
from segpipe.warehouse.schema import GROUP_OF_STATUS
from segpipe.warehouse.scratch import scratches
from segpipe.warehouse.sql import frame

# How a person names a segment: its name, and a subscriber segment's domain after it
# ("VIP Shoppers (sirendenim)"): the same name in two domains is two segments. SQL over the
# `segments` columns name and domain: `segpipe status` prints it, `segpipe members` takes it.
LABEL = "CASE WHEN domain IS NULL THEN name ELSE name || ' (' || domain || ')' END"
# The segments table with each segment's LABEL as the column `label`, to select from or join.
LABELED_SEGMENTS = f"(SELECT *, {LABEL} AS label FROM segments)"


class UnknownSegment(LookupError):
    """No segment of that name or label (interest groups included), or more than one."""


def find_segment(con: duckdb.DuckDBPyConnection, named: str) -> tuple[int, str, str]:
    """(segment_id, kind, label) of the segment whose label (LABEL) or else plain name is
    `named`, case aside. A plain name that two domains carry is refused with their labels,
    never guessed."""
    found = con.execute(
        f"""
        SELECT segment_id, kind, label, lower(label) = lower($named) AS by_label
        FROM {LABELED_SEGMENTS}
        WHERE lower(label) = lower($named) OR lower(name) = lower($named)
        ORDER BY segment_id
        """,
        {"named": named},
    ).fetchall()
    chosen = [row for row in found if row[3]] or found
    if not chosen:
        raise UnknownSegment(f"no segment named {named!r} (see `segpipe status`)")
    if len(chosen) > 1:
        labels = ", ".join(repr(row[2]) for row in chosen)
        raise UnknownSegment(
            f"more than one segment is named {named!r}: {labels}; give one of these "
            "(as `segpipe status` shows them)"
        )
    return chosen[0][0], chosen[0][1], chosen[0][2]


def segment_sizes(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every segment with its member count and its label (LABEL) as shown: `segment_id`
    BIGINT, `name`, `kind`, `members` BIGINT, `domain`, `label` (String). Interest groups are
    counted per interest and status straight from interest_memberships: counting the
    segment_members view would join each of its rows to its group first."""
    return _shown_labels(_sizes(con))


def _shown_labels(sizes: pl.DataFrame) -> pl.DataFrame:
    """`sizes` with each `label` masked (masking.mask_expr): a manual segment's name comes from
    a file and may carry an address or a number. A label that masking changed gets its
    `segment_id` (`Friends of l***@example.org #12`), so two labels that mask alike stay two."""
    masked = mask_expr(pl.col("label"))
    return sizes.with_columns(
        pl.when(masked != pl.col("label"))
        .then(pl.format("{} #{}", masked, pl.col("segment_id")))
        .otherwise(pl.col("label"))
        .alias("label")
    )


def _sizes(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return frame(
        con,
        f"""
        WITH counted AS (
            SELECT segment_id, count(*) AS members FROM segment_memberships GROUP BY ALL
            UNION ALL
            SELECT g.group_id, m.members
            FROM (SELECT interest_id, status, count(*) AS members
                  FROM interest_memberships GROUP BY ALL) m
            JOIN interest_groups g
              ON g.interest_id = m.interest_id AND g.kind = {GROUP_OF_STATUS}
        )
        SELECT s.segment_id, s.name, s.kind, coalesce(sum(c.members), 0)::BIGINT AS members,
               s.domain, s.label
        FROM {LABELED_SEGMENTS} s LEFT JOIN counted c USING (segment_id)
        GROUP BY ALL ORDER BY s.kind, s.name
        """,
    )


def members_of(segment_ids: str) -> str:
    """SQL for the (segment_id, cons_id, since) rows of `segment_members` whose segment is in
    the relation `segment_ids` (a table or subquery with a `segment_id` column).

    The same rows as filtering the view, without joining all of interest_memberships to its
    groups first: only the interests of the wanted groups are read."""
    wanted = f"(SELECT segment_id FROM {segment_ids})"
    return f"""
        SELECT segment_id, cons_id, since FROM segment_memberships
        WHERE segment_id IN {wanted}
        UNION ALL
        SELECT g.group_id AS segment_id, m.cons_id, m.since
        FROM interest_memberships m
        JOIN (SELECT * FROM interest_groups WHERE group_id IN {wanted}) g
          ON g.interest_id = m.interest_id AND g.kind = {GROUP_OF_STATUS}
        WHERE m.interest_id IN (SELECT interest_id FROM interest_groups WHERE group_id IN {wanted})
    """


def create_missing_segments(
    con: duckdb.DuckDBPyConnection,
    names: str,
    kind: str,
    at,
    description: str | None = None,
    domain: str | None = None,
    upload_id: str | None = None,
) -> int:
    """Create a segment of `kind` for every `name` in the relation `names` that matches no
    segment (case aside). With a `domain` (an Attentive account's subscriber segments), a
    segment of another domain does not match: the same name in two domains is two segments.
    Returns how many were created."""
    assert kind in SegmentKind.__members__.values(), kind
    first_id = migrate.next_segment_id(con)  # never a deleted segment's: it keeps its history
    created = con.execute(
        f"""
        INSERT INTO segments (segment_id, name, kind, description, created_at, domain)
        SELECT ? + row_number() OVER (ORDER BY name) - 1, name, ?, ?, ?, ?
        FROM (SELECT min(name) AS name FROM {names} GROUP BY lower(name)) AS wanted
        WHERE NOT EXISTS (
            SELECT 1 FROM segments s WHERE lower(s.name) = lower(wanted.name)
              AND (?::VARCHAR IS NULL OR s.domain IS NULL OR s.domain = ?))
        """,
        [first_id, kind, description, at, domain, domain, domain],
    ).fetchone()[0]
    if created:
        new = f"SELECT segment_id FROM segments WHERE segment_id >= {int(first_id)}"
        before_images.keep_created(con, upload_id, "segments", new)
        migrate.record_segment_ids(con)
    return created


def _history(con, query: str, change: str, upload_id: str | None, run_id: str | None, at) -> int:
    return con.execute(
        f"""
        INSERT INTO membership_history (upload_id, run_id, cons_id, interest_id, segment_id,
                                        change, "at")
        SELECT ?, ?, cons_id, NULL, segment_id, ?, ? FROM ({query})
        """,
        [upload_id, run_id, change, at],
    ).fetchone()[0]


def replace_members(
    con: duckdb.DuckDBPyConnection,
    *,
    segments: str,
    members: str,
    upload_id: str | None,
    run_id: str | None,
    at,
    exact: bool = False,
) -> tuple[int, int]:
    """The members of every segment in `segments` (a relation with `segment_id`) become exactly
    the (segment_id, cons_id) rows of `members`. `exact`: `members` is a table that already holds
    each pair once and only pairs of `segments` (a refreshed rule's members), read as it is
    instead of copied through a DISTINCT. Returns (entered, left)."""
    with scratches(con, "target", "entering", "leaving") as tables:
        return _replace(con, segments, members, tables, upload_id, run_id, at, exact)


def _replace(con, segments: str, members: str, tables, upload_id, run_id, at, exact: bool):
    """replace_members, in its scratch tables `tables` (target, entering, leaving)."""
    target, entering_to, leaving_to = tables
    if exact:
        target = members
    else:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {target} AS "
            f"SELECT DISTINCT segment_id, cons_id FROM {members} "
            f"WHERE segment_id IN (SELECT segment_id FROM {segments})"
        )
    leaving = f"""
        SELECT m.segment_id, m.cons_id FROM segment_memberships m
        WHERE m.segment_id IN (SELECT segment_id FROM {segments})
          AND NOT EXISTS (SELECT 1 FROM {target} t
                          WHERE t.segment_id = m.segment_id AND t.cons_id = m.cons_id)
    """
    entering = f"""
        SELECT t.segment_id, t.cons_id FROM {target} t
        WHERE NOT EXISTS (SELECT 1 FROM segment_memberships m
                          WHERE m.segment_id = t.segment_id AND m.cons_id = t.cons_id)
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {entering_to} AS {entering}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {leaving_to} AS {leaving}")
    return _move(con, entering_to, leaving_to, upload_id, run_id, at)


def change_members(
    con: duckdb.DuckDBPyConnection,
    *,
    changes: str,
    upload_id: str | None,
    run_id: str | None,
    at,
) -> tuple[int, int]:
    """Apply (segment_id, cons_id, action) rows of `changes`, action 'add' or 'remove'; adding a
    member or removing a non-member changes nothing. Returns (entered, left)."""
    entering = f"""
        SELECT DISTINCT c.segment_id, c.cons_id FROM {changes} c
        WHERE c.action = 'add' AND NOT EXISTS (
            SELECT 1 FROM segment_memberships m
            WHERE m.segment_id = c.segment_id AND m.cons_id = c.cons_id)
    """
    leaving = f"""
        SELECT DISTINCT m.segment_id, m.cons_id FROM segment_memberships m
        JOIN {changes} c ON c.segment_id = m.segment_id AND c.cons_id = m.cons_id
        WHERE c.action = 'remove'
    """
    with scratches(con, "entering", "leaving") as (entering_to, leaving_to):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {entering_to} AS {entering}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {leaving_to} AS {leaving}")
        return _move(con, entering_to, leaving_to, upload_id, run_id, at)


def _move(
    con: duckdb.DuckDBPyConnection, entering: str, leaving: str, upload_id, run_id, at
) -> tuple[int, int]:
    """Write history for, then apply, the (segment_id, cons_id) pairs in the tables `entering`
    and `leaving`."""
    before_images.keep(
        con, upload_id, "segment_memberships", f"FROM {entering} UNION ALL FROM {leaving}"
    )
    entered = _history(con, f"SELECT * FROM {entering}", "entered", upload_id, run_id, at)
    left = _history(con, f"SELECT * FROM {leaving}", "left", upload_id, run_id, at)
    con.execute(
        f"DELETE FROM segment_memberships m USING {leaving} l "
        "WHERE m.segment_id = l.segment_id AND m.cons_id = l.cons_id"
    )
    con.execute(
        f"INSERT INTO segment_memberships SELECT segment_id, cons_id, ?, ? FROM {entering}",
        [at, upload_id],
    )
    return entered, left


# Who removed a segment by hand, in membership_history's run_id (there is no upload or run).
DELETE_RUN_ID = "segpipe segment delete"


class SegmentNotDeletable(Exception):
    """The segment does not exist, or is not a list a person may delete."""


def delete_segment(con: duckdb.DuckDBPyConnection, name: str, at) -> tuple[str, str, int]:
    """Remove the segment named `name` (as find_segment reads it: a plain name two domains
    carry is refused, never one of them guessed) and its memberships, never the people; each
    member's exit goes to membership_history. Returns (label, kind, members removed). Callers
    run it inside a transaction."""
    try:
        segment_id, kind, stored_name = find_segment(con, name)
    except UnknownSegment as error:
        raise SegmentNotDeletable(str(error)) from None
    if kind == SegmentKind.INTEREST_GROUP:
        interest = con.execute(
            "SELECT i.name FROM interest_groups g JOIN interests i USING (interest_id) "
            "WHERE g.group_id = ?",
            [segment_id],
        ).fetchone()
        raise SegmentNotDeletable(
            f"{stored_name!r} is an interest group of the interest "
            f"{interest[0] if interest else '?'!r}; it lives as long as its interest "
            "(change its members with a segmentation upload)"
        )
    if kind == SegmentKind.DATA_DRIVEN:
        raise SegmentNotDeletable(
            f"{stored_name!r} is a data-driven segment defined in segments.yaml; "
            "remove it from segments.yaml instead"
        )
    with scratches(con, "entering", "leaving") as (entering, leaving):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {leaving} AS "
            "SELECT segment_id, cons_id FROM segment_memberships WHERE segment_id = ?",
            [segment_id],
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE {entering} AS SELECT * FROM {leaving} LIMIT 0")
        _, removed = _move(con, entering, leaving, None, DELETE_RUN_ID, at)
    con.execute("DELETE FROM subscriber_deliveries WHERE segment_id = ?", [segment_id])
    con.execute("DELETE FROM segments WHERE segment_id = ?", [segment_id])
    return stored_name, kind, removed
