"""Events upload: what people did (page views, offers viewed, purchases), for data-driven rules.

Events are append-only: every applied row becomes one row of `events`. Within one file, a row
identical to a later one (same person, event, timestamp and properties) is superseded, so a feed
that repeats a line does not double-count it; across files nothing is deduplicated (a file with
the same bytes as an earlier one is already refused as a duplicate).
"""

from __future__ import annotations

import duckdb
import pandera.polars as pa
import polars as pl

from segpipe.ingest import normalize
from segpipe.ingest.errors import UploadRejected
from segpipe.ingest.filenames import UploadKind
from segpipe.ingest.reader import LINE
from segpipe.ingest.validate import OUTCOME, REASON, reject_failures
from segpipe.kinds.base import (
    PERSON_IDENTIFIERS,
    KindRules,
    UploadContext,
    applied_rows,
    columns_of,
    names_person,
    person_id_types,
    person_identifiers,
    person_lookup,
    person_schema_columns,
    require_columns,
    resolve_accepted,
    supersede_earlier_rows,
)
from segpipe.vocabulary import RowOutcome
from segpipe.warehouse import before_images
from segpipe.warehouse.scratch import scratch
from segpipe.warehouse.sql import quote

STANDARD = (*PERSON_IDENTIFIERS, "event", "timestamp")
# Names segpipe uses for the event while checking it: no property may be called so.
RESERVED = ("occurred_at", "resolved_cons_id", "names_person", "timestamp_valid")
TIMESTAMP_HINT = f"use ISO 8601 / RFC 3339, e.g. {normalize.TIMESTAMP_FORMS}"

SCHEMA = pa.DataFrameSchema(
    {
        **person_schema_columns(),
        "event": pa.Column(pl.String, nullable=False),
        "timestamp": pa.Column(pl.String, nullable=False),
        "timestamp_valid": pa.Column(
            pl.Boolean, pa.Check.eq(True, error=f"invalid timestamp; {TIMESTAMP_HINT}")
        ),
    },
    name="events",
    strict=False,
)


def property_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in STANDARD and not c.startswith("_")]


def validate(file_name: str, raw: pl.DataFrame) -> pl.DataFrame:
    require_columns(file_name, raw, PERSON_IDENTIFIERS, ("event",), ("timestamp",))
    clash = [name for name in RESERVED if name in raw.columns]
    if clash:
        raise UploadRejected(
            file_name, f"column {clash[0]} is a name segpipe keeps for itself; rename it"
        )
    canonical = raw.select(
        LINE,
        *person_identifiers(raw),
        pl.col("event"),
        pl.col("timestamp"),
        normalize.utc_timestamp(pl.col("timestamp")).alias("occurred_at"),
        *property_columns(raw),
    ).with_columns(
        names_person(),
        (pl.col("timestamp").is_null() | pl.col("occurred_at").is_not_null()).alias(
            "timestamp_valid"
        ),
    )
    checked = reject_failures(canonical, SCHEMA)
    return checked.drop("names_person", "timestamp_valid", "timestamp").with_columns(
        person_id_types()
    )


_JOINS, _RESOLVED, _NOT_FOUND = person_lookup()


def _judge_sql(accepted: str) -> str:
    """Each accepted row (the view `accepted`) with its person, ignored when it names nobody."""
    return f"""
    SELECT v.* EXCLUDE ({OUTCOME}, {REASON}),
           {_RESOLVED} AS resolved_cons_id,
           CASE WHEN {_RESOLVED} IS NULL THEN '{RowOutcome.IGNORED}' END AS {OUTCOME},
           CASE WHEN {_RESOLVED} IS NULL THEN {_NOT_FOUND} END AS {REASON}
    FROM {accepted} v {_JOINS}
"""


def resolve(
    con: duckdb.DuckDBPyConnection, validated: str, resolved: str, upload: UploadContext
) -> None:
    # An exact repeat of a row (same person, event, time and properties) is superseded by it.
    properties = map(quote, property_columns(columns_of(con, validated)))
    resolve_accepted(con, validated, resolved, _judge_sql)
    supersede_earlier_rows(con, resolved, ("resolved_cons_id", "event", "occurred_at", *properties))


def _properties_map(properties: list[str]) -> tuple[str, list[str]]:
    """SQL for a MAP(VARCHAR, VARCHAR) of a row's non-empty properties; keys are parameters."""
    if not properties:
        return "MAP {}::MAP(VARCHAR, VARCHAR)", []
    entries = ", ".join(f"struct_pack(k := ?, v := {quote(name)})" for name in properties)
    return (
        f"map_from_entries(list_filter([{entries}], lambda e: e.v IS NOT NULL))"
        "::MAP(VARCHAR, VARCHAR)",
        list(properties),
    )


def apply(con: duckdb.DuckDBPyConnection, resolved: str, upload: UploadContext) -> None:
    properties = property_columns(columns_of(con, resolved).drop("resolved_cons_id", "occurred_at"))
    mapping, keys = _properties_map(properties)
    with applied_rows(con, resolved) as applied, scratch(con, "known_properties") as known:
        con.execute(
            f"""
            INSERT INTO events (cons_id, event, "timestamp", properties, upload_id)
            SELECT resolved_cons_id, event, occurred_at, {mapping}, ?
            FROM {applied} ORDER BY {LINE}
            """,
            [*keys, upload.upload_id],
        )
        # The catalogue of properties each event carries: rules may only filter on these.
        con.execute(f"CREATE OR REPLACE TEMP TABLE {known} AS FROM event_properties")
        for name in properties:
            con.execute(
                f"""
                INSERT INTO event_properties (event, property)
                SELECT DISTINCT r.event, ?::VARCHAR FROM {applied} r
                WHERE r.{quote(name)} IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM event_properties p
                    WHERE p.event = r.event AND p.property = ?)
                """,
                [name, name],
            )
        new = f"FROM event_properties EXCEPT FROM {known}"
        before_images.keep_created(con, upload.upload_id, "event_properties", new)


RULES = KindRules(UploadKind.EVENTS, header=True, validate=validate, resolve=resolve, apply=apply)
