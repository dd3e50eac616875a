"""Suppression upload: identifiers never to be contacted on a channel (SPEC 2).

Columns: `email`, `phone`, `member_id` (text, Luminate's Member ID, kept as written) or
`cons_id` (a whole number); a row may carry several, and each is suppressed. Optional
`channel` (email, sms, all; default all), `reason`, `action` (add, default; remove). No person
needs to exist: a suppression by an identifier nobody has yet applies when that person arrives,
as Census's and Klaviyo's suppression lists do. A later row for the same identifiers and
channel wins.
"""

from __future__ import annotations

import duckdb
import pandera.polars as pa
import polars as pl

from segpipe.ingest import normalize
from segpipe.ingest.filenames import UploadKind
from segpipe.ingest.reader import LINE
from segpipe.ingest.validate import reject_failures
from segpipe.kinds import columns
from segpipe.kinds.base import (
    KindRules,
    UploadContext,
    applied_rows,
    column_or_null,
    require_columns,
    resolve_accepted,
    supersede_earlier_rows,
)
from segpipe.warehouse.scratch import scratch
from segpipe.warehouse.suppressions import (
    IdentifierKind,
    SuppressionAction,
    SuppressionChannel,
    apply_changes,
)

IDENTIFIERS = tuple(IdentifierKind)

SCHEMA = pa.DataFrameSchema(
    {
        "email": columns.email(),
        "phone": columns.phone(),
        "cons_id": columns.whole_number("cons_id"),
        "names_identifier": columns.holds(
            "row names no one: email, phone, member_id and cons_id are empty"
        ),
        "channel": pa.Column(
            pl.String,
            pa.Check.isin(
                list(SuppressionChannel),
                error="unrecognized channel; use " + ", ".join(SuppressionChannel),
            ),
        ),
        "action": pa.Column(
            pl.String,
            pa.Check.isin(
                list(SuppressionAction),
                error="unrecognized action; use " + " or ".join(SuppressionAction),
            ),
        ),
    },
    name="suppression",
    strict=False,
)


def validate(file_name: str, raw: pl.DataFrame) -> pl.DataFrame:
    require_columns(file_name, raw, IDENTIFIERS)
    present = lambda name: column_or_null(raw, name)  # noqa: E731
    canonical = raw.select(
        LINE,
        normalize.email(present("email")).alias("email"),
        normalize.phone_e164(present("phone")).alias("phone"),
        columns.phone_problem(present("phone")),
        present("member_id").str.strip_chars().alias("member_id"),
        present("cons_id").str.strip_chars().alias("cons_id"),
        present("channel").str.strip_chars().str.to_lowercase().fill_null("all").alias("channel"),
        present("reason").str.strip_chars().alias("reason"),
        present("action").str.strip_chars().str.to_lowercase().fill_null("add").alias("action"),
    ).with_columns(pl.any_horizontal(pl.col(IDENTIFIERS).is_not_null()).alias("names_identifier"))
    # A phone's own reason (its country, NANP's 2-9 rule) as constituent files give it.
    return reject_failures(canonical, SCHEMA, [columns.PHONE_PROBLEM]).drop("names_identifier")


def resolve(
    con: duckdb.DuckDBPyConnection, validated: str, resolved: str, upload: UploadContext
) -> None:
    resolve_accepted(con, validated, resolved, lambda accepted: f"SELECT * FROM {accepted}")
    supersede_earlier_rows(con, resolved, (*IDENTIFIERS, "channel"))


def apply(con: duckdb.DuckDBPyConnection, resolved: str, upload: UploadContext) -> None:
    with scratch(con, "suppression_changes") as changes:
        with applied_rows(con, resolved) as applied:
            # One change per identifier a row names (member_id and cons_id kept as digits).
            per_identifier = " UNION ALL ".join(
                f"SELECT '{kind}' AS identifier_kind, {kind}::VARCHAR AS identifier, channel, "
                f"reason, action, {LINE} FROM {applied} WHERE {kind} IS NOT NULL"
                for kind in IDENTIFIERS
            )
            con.execute(f"CREATE OR REPLACE TEMP TABLE {changes} AS {per_identifier}")
        apply_changes(con, changes, upload.upload_id, upload.at)


RULES = KindRules(
    UploadKind.SUPPRESSION, header=True, validate=validate, resolve=resolve, apply=apply
)
