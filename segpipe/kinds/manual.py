"""Manual segment upload (Customer.io, Lumen): add people to, or remove them from, lists."""

from __future__ import annotations

import duckdb
import pandera.polars as pa
import polars as pl

from segpipe.ingest.filenames import UploadKind
from segpipe.ingest.reader import LINE
from segpipe.ingest.validate import OUTCOME, REASON, reject_failures
from segpipe.kinds.base import (
    NAMES_PERSON,
    KindRules,
    UploadContext,
    applied_rows,
    column_or_null,
    names_person,
    not_found,
    not_found_reason,
    person_id_types,
    person_identifiers,
    person_lookup,
    person_schema_columns,
    require_columns,
    resolve_accepted,
    supersede_earlier_rows,
)
from segpipe.vocabulary import RowOutcome, SegmentKind, sql_list
from segpipe.warehouse.scratch import scratches
from segpipe.warehouse.segments import change_members, create_missing_segments

# A row uses its first non-empty identifier: cons_id, member_id, external_id, then email.
EXTRA_IDENTIFIERS = ("external_id",)
IDENTIFIERS = ("cons_id", "member_id", "external_id", "email")

SCHEMA = pa.DataFrameSchema(
    {
        "segment": pa.Column(pl.String),
        **person_schema_columns(EXTRA_IDENTIFIERS),
        "action": pa.Column(
            pl.String,
            pa.Check.isin(["add", "remove"], error="unrecognized action; use add or remove"),
        ),
    },
    name="manual_segment",
    strict=False,
)


def validate(file_name: str, raw: pl.DataFrame) -> pl.DataFrame:
    require_columns(file_name, raw, ("segment",), IDENTIFIERS)
    action = column_or_null(raw, "action").str.to_lowercase()
    canonical = raw.select(
        LINE,
        pl.col("segment"),
        *person_identifiers(raw, EXTRA_IDENTIFIERS),
        action.fill_null("add").alias("action"),
    ).with_columns(names_person(EXTRA_IDENTIFIERS))
    checked = reject_failures(canonical, SCHEMA)
    return checked.drop(NAMES_PERSON).with_columns(person_id_types())


# Lookups are grouped first so that a row never matches two people (external_id and email are
# not unique keys in constituents): the lowest cons_id wins.
_JOINS, _RESOLVED, _ = person_lookup("by_email")
# Segments whose members a manual file may not edit: their own rules or files own them.
_NOT_BY_HAND = (SegmentKind.DATA_DRIVEN, SegmentKind.INTEREST_GROUP, SegmentKind.SUBSCRIBER)


def _judge_sql(accepted: str) -> str:
    """Each accepted row (the view `accepted`) with its person and segment, or why it has none."""
    return f"""
WITH by_external AS (
    SELECT external_id, min(cons_id) AS cons_id FROM constituents
    WHERE external_id IN (SELECT external_id FROM {accepted}) GROUP BY external_id
),
by_email AS (
    SELECT email, min(cons_id) AS cons_id FROM constituents
    WHERE email IN (SELECT email FROM {accepted}) GROUP BY email
),
named AS (
    SELECT lower(name) AS key, min(segment_id) AS segment_id, arg_min(kind, segment_id) AS kind
    FROM segments GROUP BY lower(name)
),
added AS (SELECT DISTINCT lower(segment) AS key FROM {accepted} WHERE action = 'add'),
matched AS (
    SELECT v.* EXCLUDE ({OUTCOME}, {REASON}),
           s.segment_id, s.kind AS segment_kind,
           -- a segment this file creates (by an add row) may also be removed from in it
           s.segment_id IS NULL AND a.key IS NULL AS segment_unknown,
           coalesce({_RESOLVED}, x.cons_id) AS resolved_cons_id
    FROM {accepted} v {_JOINS}
    LEFT JOIN by_external x ON x.external_id = v.external_id
    LEFT JOIN named s ON s.key = lower(v.segment)
    LEFT JOIN added a ON a.key = lower(v.segment)
)
SELECT * EXCLUDE (segment_unknown),
    CASE
        WHEN segment_kind IN {sql_list(_NOT_BY_HAND)} THEN '{RowOutcome.REJECTED}'
        WHEN resolved_cons_id IS NULL THEN '{RowOutcome.IGNORED}'
        WHEN segment_unknown THEN '{RowOutcome.IGNORED}'
    END AS {OUTCOME},
    CASE
        WHEN segment_kind = '{SegmentKind.DATA_DRIVEN}'
            THEN 'segment ' || segment || ' is data-driven (defined in segments.yaml) and cannot '
                 || 'be edited by hand'
        WHEN segment_kind = '{SegmentKind.INTEREST_GROUP}'
            THEN 'segment ' || segment || ' is an interest group; change it with a segmentation '
                 || 'upload'
        WHEN segment_kind = '{SegmentKind.SUBSCRIBER}'
            THEN 'segment ' || segment || ' is a subscriber segment; each Attentive delivery '
                 || 'replaces it'
        WHEN resolved_cons_id IS NULL AND external_id IS NOT NULL
            THEN {not_found("external_id", "external_id")}
        WHEN resolved_cons_id IS NULL THEN {not_found_reason("matched")}
        WHEN segment_unknown
            THEN 'no segment named ' || segment || ' to remove from'
    END AS {REASON}
FROM matched
"""


def resolve(
    con: duckdb.DuckDBPyConnection, validated: str, resolved: str, upload: UploadContext
) -> None:
    resolve_accepted(con, validated, resolved, _judge_sql)
    supersede_earlier_rows(con, resolved, ("resolved_cons_id", "lower(segment)"))


def apply(con: duckdb.DuckDBPyConnection, resolved: str, upload: UploadContext) -> None:
    with scratches(con, "named", "changes") as (named, changes):
        with applied_rows(con, resolved) as applied:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {named} AS "
                f"SELECT segment AS name FROM {applied} WHERE action = 'add'"
            )
            create_missing_segments(
                con, named, SegmentKind.MANUAL, upload.at, upload_id=upload.upload_id
            )
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE {changes} AS
                SELECT s.segment_id, r.resolved_cons_id AS cons_id, r.action
                FROM {applied} r JOIN segments s ON lower(s.name) = lower(r.segment)
                WHERE s.kind = '{SegmentKind.MANUAL}'
                """
            )
        change_members(
            con, changes=changes, upload_id=upload.upload_id, run_id=upload.run_id, at=upload.at
        )


RULES = KindRules(
    UploadKind.MANUAL_SEGMENT, header=True, validate=validate, resolve=resolve, apply=apply
)
