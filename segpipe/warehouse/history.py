"""Who was in a segment at any instant, and a person's entries and exits, read from
membership_history (Hightouch's "who was in this audience on that day").

membership_history has one row per change: a segment entry or exit (`segment_id`, change
`entered`/`left`), or an interest status (`interest_id`, change `opted_in`/`opted_out`, or
`cleared` by an undo). An interest group's members at T are the people whose latest status in
its interest at or before T is the group's kind.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from segpipe.ingest.normalize import mask_email
from segpipe.vocabulary import InterestGroupKind, InterestStatus, SegmentKind
from segpipe.warehouse.before_images import PERSON
from segpipe.warehouse.segments import LABELED_SEGMENTS, find_segment
from segpipe.warehouse.sql import frame

# The latest change of each person at or before $as_of, for one segment or one interest.
_SEGMENT_MEMBERS = f"""
    SELECT {PERSON} FROM membership_history
    WHERE segment_id = $id AND "at" <= $as_of
    GROUP BY {PERSON}
    HAVING max_by(change, struct_pack(t := "at", r := rowid)) = 'entered'
"""
_GROUP_MEMBERS = f"""
    SELECT h.{PERSON} FROM membership_history h
    JOIN interest_groups g ON g.interest_id = h.interest_id AND g.group_id = $id
    WHERE h."at" <= $as_of
    GROUP BY h.{PERSON}, g.kind
    HAVING max_by(h.change, struct_pack(t := h."at", r := h.rowid)) =
        CASE g.kind WHEN '{InterestGroupKind.OPT_IN}' THEN '{InterestStatus.OPTED_IN}'
             ELSE '{InterestStatus.OPTED_OUT}' END
"""


def members_at(con: duckdb.DuckDBPyConnection, segment: str, as_of: datetime) -> pl.DataFrame:
    """The members of the segment named `segment` (its name or label, case aside: find_segment;
    interest groups included) at `as_of` (UTC, naive), from membership_history: columns
    `cons_id` (BIGINT), `member_id` (text), `email` (masked), ordered by cons_id. A person no
    longer in `constituents` (their creation undone) was still a member then: listed by cons_id
    alone. Raises segments.UnknownSegment."""
    segment_id, kind, _ = find_segment(con, segment)
    members = _GROUP_MEMBERS if kind == SegmentKind.INTEREST_GROUP else _SEGMENT_MEMBERS
    rows = frame(
        con,
        f"""
        SELECT m.{PERSON} AS cons_id, c.member_id, c.email
        FROM ({members}) m LEFT JOIN ({_PEOPLE}) c ON c.cons_id = m.{PERSON}
        ORDER BY m.{PERSON}
        """.replace("$id", str(int(segment_id))),
        {"as_of": as_of},
    )
    return rows.with_columns(mask_email(pl.col("email")).alias("email"))


# People as the history shows them: the Constituent ID and the external Member ID.
_PEOPLE = "SELECT cons_id, member_id, email FROM constituents"


def person_history(con: duckdb.DuckDBPyConnection, member_id: str) -> pl.DataFrame:
    """Every entry and exit of the person with this Member ID, oldest first: columns `at`,
    `change`, `segment` (the segment's label as `segpipe status` shows it, "VIP (acme)" for a
    subscriber segment, or the interest's name), `kind`, `upload_id`, `file_name`,
    `run_id`. The history outlives what it names: a segment or interest since deleted (segment
    delete, undo, a rule gone from segments.yaml) is named by its id, "segment 7 (deleted)",
    its kind "-" (unknown once its row is gone)."""
    return frame(
        con,
        f"""
        SELECT h."at", h.change,
               coalesce(s.label, i.name, CASE WHEN h.interest_id IS NOT NULL
                   THEN 'interest ' || h.interest_id ELSE 'segment ' || h.segment_id END
                   || ' (deleted)') AS segment,
               CASE WHEN h.interest_id IS NOT NULL THEN 'interest'
                    ELSE coalesce(s.kind, '-') END AS kind,
               h.upload_id, u.file_name, h.run_id
        FROM membership_history h
        JOIN ({_PEOPLE}) c ON c.cons_id = h.{PERSON}
        LEFT JOIN {LABELED_SEGMENTS} s ON s.segment_id = h.segment_id
        LEFT JOIN interests i ON i.interest_id = h.interest_id
        LEFT JOIN uploads u ON u.upload_id = h.upload_id
        WHERE c.member_id = $member_id
        ORDER BY h."at", h.rowid
        """,
        {"member_id": member_id},
    )
