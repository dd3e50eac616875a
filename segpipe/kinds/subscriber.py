"""Subscriber segment upload (Attentive): headerless `identifier,segment` rows, full replace.

A delivery is every file of one domain and date. For each segment a delivery names, the
segment's members become exactly the subscribers its files matched; a later file of the same
delivery extends it, a re-sent file (same part number) replaces its earlier version, and a file
older than the domain's latest applied delivery is refused as stale.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandera.polars as pa
import polars as pl

from segpipe import attentive
from segpipe.ingest import normalize
from segpipe.ingest.errors import UploadHeld, UploadRejected
from segpipe.ingest.filenames import Delivery, UploadKind, delivery_of
from segpipe.ingest.reader import LINE, normalize_header, read_file
from segpipe.ingest.validate import OUTCOME, REASON, reject_failures
from segpipe.kinds import columns
from segpipe.kinds.base import (
    KindRules,
    UploadContext,
    resolve_accepted,
    row_count,
    supersede_earlier_rows,
    view,
)
from segpipe.vocabulary import RowOutcome, SegmentKind
from segpipe.warehouse import before_images
from segpipe.warehouse.guard import held_message, too_many_removals
from segpipe.warehouse.scratch import name_for, scratches
from segpipe.warehouse.segments import create_missing_segments, replace_members

IDENTIFIER, SEGMENT = "column_1", "column_2"
# What the cells of a header row say; a first row whose identifier is not a phone or an email
# and that reads like column names is a header, which these files never carry.
IDENTIFIER_HEADERS = {
    "phone", "phone_number", "phonenumber", "mobile", "mobile_number", "cell", "sms",
    "email", "email_address", "e_mail", "identifier", "id", "subscriber", "subscriber_id",
}  # fmt: skip
SEGMENT_HEADERS = {"segment", "segment_name", "segments", "name", "list", "audience"}
PHONE_CHARACTERS = r"^\+?[0-9\s().\-]+$"

SCHEMA = pa.DataFrameSchema(
    {
        "phone": columns.phone(),
        "email": columns.email(),
        "names_subscriber": columns.holds("row names no subscriber: the first column is empty"),
        "segment": pa.Column(
            pl.String,
            [
                pa.Check.str_length(
                    max_value=attentive.SEGMENT_NAME_MAX,
                    error=f"segment name is longer than {attentive.SEGMENT_NAME_MAX} characters",
                ),
                pa.Check.str_matches(
                    attentive.SEGMENT_NAME_PATTERN,
                    error="segment name may contain only letters, digits, spaces, _ and -",
                ),
            ],
        ),
    },
    name="subscriber_segment",
    strict=False,
)


def _looks_like_email(identifier: pl.Expr) -> pl.Expr:
    return identifier.str.contains("@")


def _looks_like_phone(identifier: pl.Expr) -> pl.Expr:
    return identifier.str.contains(PHONE_CHARACTERS) & identifier.str.contains("[0-9]")


def identifier_kinds(path: Path) -> set[str]:
    """Which kinds of identifier ("phone", "email") a subscriber file's rows carry."""
    raw = read_file(path, header=False, columns=2)
    found = raw.select(
        email=_looks_like_email(pl.col(IDENTIFIER)).any(),
        phone=_looks_like_phone(pl.col(IDENTIFIER)).any(),
    ).row(0, named=True)
    return {kind for kind, present in found.items() if present}


def _refuse_header(file_name: str, raw: pl.DataFrame) -> None:
    """A first line whose identifier is neither a phone nor an email, while a later line's is
    (`Mobile Phone,Segment Title`), or whose cells are column names, is a header row."""
    identifier = pl.col(IDENTIFIER)
    names = _looks_like_email(identifier) | _looks_like_phone(identifier)
    first, later = raw.head(1), raw.slice(1)
    row = first.row(0, named=True)
    if row[IDENTIFIER] is None or first.select(names).item():
        return
    named_later = later.select(names.fill_null(False).any()).item()
    if named_later or (
        normalize_header(row[IDENTIFIER] or "") in IDENTIFIER_HEADERS
        or normalize_header(row[SEGMENT] or "") in SEGMENT_HEADERS
    ):
        raise UploadRejected(
            file_name,
            "line 1 is a header row; subscriber segment files carry no header: "
            "every line is identifier,segment name",
            rows_in=raw.height,
        )


def _identifier_kind(file_name: str, raw: pl.DataFrame) -> str:
    """'email' or 'phone': the one kind of identifier the file carries, else UploadRejected."""
    identifier = pl.col(IDENTIFIER)
    first_lines = raw.select(
        pl.col(LINE).filter(_looks_like_email(identifier)).min().alias("email"),
        pl.col(LINE).filter(_looks_like_phone(identifier)).min().alias("phone"),
    ).row(0, named=True)
    if first_lines["email"] is not None and first_lines["phone"] is not None:
        raise UploadRejected(
            file_name,
            "file mixes phone numbers and emails (first phone on line "
            f"{first_lines['phone']}, first email on line {first_lines['email']}); "
            "a subscriber segment file carries one kind of identifier",
            rows_in=raw.height,
        )
    return "email" if first_lines["email"] is not None else "phone"


def validate(file_name: str, raw: pl.DataFrame) -> pl.DataFrame:
    delivery_of(file_name)  # the name's grammar and date, before anything is read
    _refuse_header(file_name, raw)
    kind = _identifier_kind(file_name, raw)
    identifier = pl.col(IDENTIFIER)
    canonical = raw.select(
        LINE,
        (normalize.phone_e164(identifier) if kind == "phone" else pl.lit(None, pl.String)).alias(
            "phone"
        ),
        (normalize.email(identifier) if kind == "email" else pl.lit(None, pl.String)).alias(
            "email"
        ),
        (columns.phone_problem(identifier) if kind == "phone" else pl.lit(None, pl.String)).alias(
            columns.PHONE_PROBLEM
        ),
        identifier.is_not_null().alias("names_subscriber"),
        pl.col(SEGMENT).alias("segment"),
    )
    return reject_failures(canonical, SCHEMA, [columns.PHONE_PROBLEM]).drop("names_subscriber")


# One person per phone (or email): the lowest cons_id among those opted in, so a row never
# turns into two. `someone` tells "nobody has it" from "nobody with it opted in". Segments are
# those of this delivery's domain, or of another kind (which the row may not replace).
def _judge_sql(accepted: str) -> str:
    """Each accepted row (the view `accepted`) with its subscriber and segment, or why not."""
    return f"""
WITH by_phone AS (
    SELECT phone, min(cons_id) FILTER (WHERE sms_opt_in) AS subscriber,
           min(cons_id) AS someone
    FROM constituents WHERE phone IN (SELECT phone FROM {accepted}) GROUP BY phone
),
by_email AS (
    SELECT email, min(cons_id) FILTER (WHERE email_opt_in) AS subscriber,
           min(cons_id) AS someone
    FROM constituents WHERE email IN (SELECT email FROM {accepted}) GROUP BY email
),
named AS (
    SELECT lower(name) AS key, min(segment_id) AS segment_id, arg_min(kind, segment_id) AS kind
    FROM segments WHERE domain IS NULL OR domain = $domain GROUP BY lower(name)
),
matched AS (
    SELECT v.* EXCLUDE ({OUTCOME}, {REASON}),
           s.segment_id, s.kind AS segment_kind,
           coalesce(p.subscriber, e.subscriber) AS resolved_cons_id,
           coalesce(p.someone, e.someone) AS someone
    FROM {accepted} v
    LEFT JOIN by_phone p ON p.phone = v.phone
    LEFT JOIN by_email e ON e.email = v.email
    LEFT JOIN named s ON s.key = lower(v.segment)
)
SELECT * EXCLUDE (someone),
    CASE
        WHEN segment_kind IS NOT NULL AND segment_kind <> '{SegmentKind.SUBSCRIBER}'
            THEN '{RowOutcome.REJECTED}'
        WHEN resolved_cons_id IS NULL THEN '{RowOutcome.IGNORED}'
    END AS {OUTCOME},
    CASE
        WHEN segment_kind IS NOT NULL AND segment_kind <> '{SegmentKind.SUBSCRIBER}'
            THEN 'segment ' || segment || ' is a ' || replace(segment_kind, '_', '-')
                 || ' segment; subscriber files only replace subscriber segments'
        WHEN someone IS NULL AND phone IS NOT NULL THEN 'no constituent with that phone number'
        WHEN someone IS NULL THEN 'no constituent with that email'
        WHEN resolved_cons_id IS NULL AND phone IS NOT NULL
            THEN 'constituent has not opted in to SMS (sms_opt_in)'
        WHEN resolved_cons_id IS NULL
            THEN 'constituent has not opted in to email (email_opt_in)'
    END AS {REASON}
FROM matched
"""


def latest_delivery(con: duckdb.DuckDBPyConnection, domain: str) -> date | None:
    # fetchall, not fetchone: a half-read result would block the next statement on `con`.
    rows = con.execute(
        "SELECT max(delivery_date) FROM subscriber_deliveries WHERE domain = ?", [domain]
    ).fetchall()
    return rows[0][0]


def resolve(
    con: duckdb.DuckDBPyConnection, validated: str, resolved: str, upload: UploadContext
) -> None:
    delivery = delivery_of(upload.file_name)
    latest = latest_delivery(con, delivery.domain)
    if latest is not None and delivery.day < latest:
        raise UploadRejected(
            upload.file_name,
            f"stale delivery: {delivery.day:%Y-%m-%d} is older than the {latest:%Y-%m-%d} "
            f"delivery already applied for domain {delivery.domain}",
            rows_in=row_count(con, validated),
        )
    resolve_accepted(con, validated, resolved, _judge_sql, {"domain": delivery.domain})
    supersede_earlier_rows(con, resolved, ("resolved_cons_id", "lower(segment)"))


def _record_contribution(con, named_rows: str, delivery: Delivery, upload: UploadContext) -> None:
    """This file's part of its delivery, from the view `named_rows`: the file itself, each
    segment it names and each subscriber it matched. A re-sent part replaces its earlier
    version; older deliveries of the domain are dropped (their changes are in history)."""
    replaced = (
        "FROM subscriber_deliveries WHERE domain = ? "
        "AND (delivery_date < ? OR (delivery_date = ? AND part = ?))"
    )
    replaced_params = [delivery.domain, delivery.day, delivery.day, delivery.part]
    with scratches(con, "replaced", "contributed") as (gone, contributed):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {gone} AS SELECT * {replaced}", replaced_params)
        before_images.keep(con, upload.upload_id, "subscriber_deliveries", f"FROM {gone}")
        con.execute(f"DELETE {replaced}", replaced_params)
        _insert_contribution(con, named_rows, delivery, upload)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {contributed} AS "
            "FROM subscriber_deliveries WHERE upload_id = ?",
            [upload.upload_id],
        )
        before_images.keep_created(
            con, upload.upload_id, "subscriber_deliveries", f"FROM {contributed}"
        )


def _insert_contribution(con, named_rows: str, delivery: Delivery, upload: UploadContext) -> None:
    """The file's row of subscriber_deliveries, and one per segment and subscriber it names."""
    key = [delivery.domain, delivery.day, delivery.part, upload.upload_id]
    con.execute(
        f"""
        INSERT INTO subscriber_deliveries
        SELECT ?, ?, ?, ?, NULL, NULL
        UNION ALL
        SELECT DISTINCT ?, ?, ?, ?, s.segment_id,
               CASE WHEN r.{OUTCOME} IS NULL THEN r.resolved_cons_id END
        FROM {named_rows} r JOIN segments s ON lower(s.name) = lower(r.segment)
        WHERE s.kind = '{SegmentKind.SUBSCRIBER}' AND s.domain = ?
        """,
        key + key + [delivery.domain],
    )


def apply(con: duckdb.DuckDBPyConnection, resolved: str, upload: UploadContext) -> None:
    delivery = delivery_of(upload.file_name)
    # A row names its segment unless it was rejected: a segment named only by people who did
    # not match is emptied, as Attentive's full replace would.
    named = f"SELECT * FROM {resolved} WHERE {OUTCOME} IS DISTINCT FROM '{RowOutcome.REJECTED}'"
    with scratches(con, "named", "delivery_segments", "delivery_members") as tables:
        named_segments, segments, members = tables
        with view(con, name_for("named_rows"), named) as named_rows:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {named_segments} AS "
                f"SELECT segment AS name FROM {named_rows}"
            )
            create_missing_segments(
                con,
                named_segments,
                SegmentKind.SUBSCRIBER,
                upload.at,
                domain=delivery.domain,
                upload_id=upload.upload_id,
            )
            _record_contribution(con, named_rows, delivery, upload)
        _replace_with_delivery(con, resolved, delivery, upload, segments, members)


def _replace_with_delivery(con, resolved, delivery, upload, segments: str, members: str) -> None:
    """Every segment of the delivery so far (into the scratch table `segments`) gets the
    delivery's members (into `members`), unless the removal guard holds the file."""
    this_delivery = [delivery.domain, delivery.day]
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {segments} AS
        SELECT DISTINCT segment_id FROM subscriber_deliveries
        WHERE domain = ? AND delivery_date = ? AND segment_id IS NOT NULL
        """,
        this_delivery,
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {members} AS
        SELECT DISTINCT segment_id, cons_id FROM subscriber_deliveries
        WHERE domain = ? AND delivery_date = ? AND cons_id IS NOT NULL
        """,
        this_delivery,
    )
    _guard_removals(con, resolved, upload, segments, members)
    replace_members(
        con,
        segments=segments,
        members=members,
        upload_id=upload.upload_id,
        run_id=upload.run_id,
        at=upload.at,
    )


def _removal_counts(segments: str, members: str) -> str:
    """Per segment of the delivery (`segments`): its members now, and how many the delivery's
    `members` would remove."""
    return f"""
    SELECT s.name AS segment, count(*) AS members,
           count(*) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM {members} t
               WHERE t.segment_id = m.segment_id AND t.cons_id = m.cons_id)) AS removes
    FROM segment_memberships m JOIN segments s USING (segment_id)
    WHERE m.segment_id IN (SELECT segment_id FROM {segments})
    GROUP BY s.name
"""


def _guard_removals(con, resolved: str, upload: UploadContext, segments: str, members: str):
    """Hold the file (UploadHeld) when its delivery would remove more than the removal limit
    of a segment: a truncated file must not wipe a list."""
    held = too_many_removals(con, _removal_counts(segments, members), upload.removal_limit)
    if held:
        raise UploadHeld(
            upload.file_name,
            held_message("delivery", held, upload.removal_limit),
            rows_in=row_count(con, resolved),
        )


RULES = KindRules(
    UploadKind.SUBSCRIBER_SEGMENT,
    header=False,
    columns=2,
    validate=validate,
    resolve=resolve,
    apply=apply,
    full_replace=True,
)
