"""Constituent data upload: create or update people and their attributes."""

from __future__ import annotations

import duckdb
import pandera.polars as pa
import polars as pl

from segpipe.ingest import attributes, normalize
from segpipe.ingest.errors import UploadRejected
from segpipe.ingest.filenames import UploadKind
from segpipe.ingest.reader import LINE
from segpipe.ingest.validate import OUTCOME, REASON, reject_failures
from segpipe.kinds import columns
from segpipe.kinds.base import (
    KindRules,
    UploadContext,
    column_or_null,
    require_columns,
    resolve_accepted,
    supersede_earlier_rows,
)
from segpipe.warehouse import before_images, interests
from segpipe.warehouse.sql import frame, next_id, quote, registered

TEXT_FIELDS = ["external_id", "first_name", "last_name"]
STANDARD = [
    "member_id",
    "email",
    "phone",
    *TEXT_FIELDS,
    "email_opt_in",
    "sms_opt_in",
    "interest_id",
]
BOOLEAN_HINT = "use yes/no, y/n, true/false, t/f or 1/0"
# Kept by segpipe, or used while resolving a file: a file may not carry them as attributes.
BOOKKEEPING = {
    "created_at",
    "updated_at",
    "upload_id",
    "target_member_id",
    "email_owner",
    "interest_known",
    "person_key",
}


def _flag(name: str) -> pa.Column:
    return pa.Column(
        pl.String, pa.Check.isin(["true", "false"], error=f"{name}: {BOOLEAN_HINT}"), nullable=True
    )


SCHEMA = pa.DataFrameSchema(
    {
        "member_id": columns.whole_number("member_id"),
        "email": columns.email(),
        "phone": columns.phone(),
        "email_opt_in": _flag("email_opt_in"),
        "sms_opt_in": _flag("sms_opt_in"),
        "interest_id": columns.whole_number("interest_id"),
        "names_person": columns.holds("row names no person: email and member_id are empty"),
    },
    name="constituent",
    strict=False,
)


def attribute_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in STANDARD and not c.startswith("_")]


def validate(file_name: str, raw: pl.DataFrame) -> pl.DataFrame:
    require_columns(file_name, raw, ("member_id", "email"))
    clash = sorted(BOOKKEEPING & set(raw.columns))
    if clash:
        raise UploadRejected(
            file_name, f"column {clash[0]} is kept by segpipe and cannot be uploaded"
        )
    present = lambda name: column_or_null(raw, name)  # noqa: E731
    canonical = raw.select(
        LINE,
        present("member_id").alias("member_id"),
        normalize.email(present("email")).alias("email"),
        normalize.phone_e164(present("phone")).alias("phone"),
        *[present(name).alias(name) for name in TEXT_FIELDS],
        normalize.boolean_word(present("email_opt_in")).alias("email_opt_in"),
        normalize.boolean_word(present("sms_opt_in")).alias("sms_opt_in"),
        present("interest_id").alias("interest_id"),
        *attribute_columns(raw),
    ).with_columns(
        (pl.col("member_id").is_not_null() | pl.col("email").is_not_null()).alias("names_person")
    )
    checked = reject_failures(canonical, SCHEMA).drop("names_person")
    good = checked.filter(pl.col(OUTCOME).is_null())
    attribute_types = {name: attributes.sql_type(good[name]) for name in attribute_columns(raw)}
    return checked.with_columns(
        pl.col("member_id", "interest_id").cast(pl.Int64, strict=False),
        pl.col("email_opt_in", "sms_opt_in") == "true",
        *[attributes.typed(pl.col(name), sql).alias(name) for name, sql in attribute_types.items()],
    )


JUDGE_SQL = f"""
WITH matched AS (
    SELECT v.* EXCLUDE ({OUTCOME}, {REASON}),
           by_email.member_id AS email_owner,
           coalesce(v.member_id, by_email.member_id) AS target_member_id,
           v.interest_id IS NULL OR i.interest_id IS NOT NULL AS interest_known
    FROM validated v
    LEFT JOIN constituents by_email ON by_email.email = v.email
    LEFT JOIN interests i ON i.interest_id = v.interest_id
),
keyed AS (
    SELECT *,
        coalesce(target_member_id::VARCHAR, 'email:' || email, 'line:' || {LINE}) AS person_key
    FROM matched
)
SELECT *,
    CASE
        WHEN NOT interest_known THEN 'rejected'
        WHEN email_owner <> target_member_id THEN 'rejected'
        WHEN email IS NOT NULL AND min(person_key) OVER by_email <> max(person_key) OVER by_email
            THEN 'rejected'
    END AS {OUTCOME},
    CASE
        WHEN NOT interest_known THEN 'unknown interest_id ' || interest_id
        WHEN email_owner <> target_member_id
            THEN 'email already belongs to member_id ' || email_owner
        WHEN email IS NOT NULL AND min(person_key) OVER by_email <> max(person_key) OVER by_email
            THEN 'email is on another row of this file for a different constituent'
    END AS {REASON}
FROM keyed
WINDOW by_email AS (PARTITION BY email)
"""


def resolve(con: duckdb.DuckDBPyConnection, validated: str, upload: UploadContext) -> str:
    query = f"SELECT * EXCLUDE (email_owner, interest_known) FROM ({JUDGE_SQL})"
    resolved = resolve_accepted(con, validated, query)
    supersede_earlier_rows(con, resolved, ("person_key",))
    con.execute(f"ALTER TABLE {resolved} DROP COLUMN person_key")
    return resolved


def _warehouse_columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = frame(
        con,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'constituents' ORDER BY ordinal_position",
    )
    return dict(rows.iter_rows())


def _widen_attribute_columns(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> dict[str, str]:
    """Add or widen a warehouse column for every attribute the file carries; returns all columns."""
    existing = _warehouse_columns(con)
    for name in attribute_columns(rows.drop("target_member_id")):
        incoming = attributes.sql_type_of(rows[name].dtype)
        if name not in existing:
            con.execute(f"ALTER TABLE constituents ADD COLUMN {quote(name)} {incoming}")
        elif (wanted := attributes.wider(existing[name], incoming)) != existing[name]:
            con.execute(f"ALTER TABLE constituents ALTER COLUMN {quote(name)} TYPE {wanted}")
    return _warehouse_columns(con)


def _merged_column(name: str, sql_type: str, incoming: set[str]) -> str:
    """A blank cell or an absent column keeps what the warehouse has."""
    if name == "member_id":
        return "p.member_id"
    if name == "created_at":
        return "coalesce(c.created_at, $at)"
    if name == "updated_at":
        return "$at"
    if name == "upload_id":
        return "$upload_id"
    if name in incoming:
        return f"coalesce(p.{quote(name)}::{sql_type}, c.{quote(name)})"
    return f"c.{quote(name)}"


def _first_new_member_id(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> int:
    """New people's ids start above every id in the warehouse and every id the file names."""
    named = rows["target_member_id"].max()
    return max(next_id(con, "constituents", "member_id"), (named or 0) + 1)


def apply(con: duckdb.DuckDBPyConnection, resolved: str, upload: UploadContext) -> None:
    # Back to polars: attribute columns are widened from the rows' types (a small file kind).
    rows = frame(
        con, f"SELECT * EXCLUDE ({OUTCOME}, {REASON}) FROM {resolved} WHERE {OUTCOME} IS NULL"
    )
    # A column the file left blank says nothing: it must not add or retype a warehouse column.
    attributes_sent = attribute_columns(rows.drop("target_member_id"))
    blank = [c for c in attributes_sent if rows[c].null_count() == rows.height]
    rows = rows.drop(blank)
    columns = _widen_attribute_columns(con, rows)
    with registered(con, "applied_rows", rows):
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _people AS
            SELECT * EXCLUDE (target_member_id, member_id),
                   coalesce(target_member_id,
                            ? + row_number() OVER (
                                PARTITION BY target_member_id IS NULL ORDER BY {LINE}) - 1
                   ) AS member_id
            FROM applied_rows
            """,
            [_first_new_member_id(con, rows)],
        )
    incoming = set(rows.columns) - {"member_id", LINE, "target_member_id", "interest_id"}
    select = ", ".join(
        f"{_merged_column(name, kind, incoming)} AS {quote(name)}" for name, kind in columns.items()
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _merged AS
        SELECT {select}
        FROM _people p LEFT JOIN constituents c ON c.member_id = p.member_id
        """,
        {"at": upload.at, "upload_id": upload.upload_id},
    )
    before_images.keep(con, upload.upload_id, "constituents", "SELECT member_id FROM _people")
    con.execute("DELETE FROM constituents WHERE member_id IN (SELECT member_id FROM _people)")
    names = ", ".join(quote(name) for name in columns)
    con.execute(f"INSERT INTO constituents ({names}) SELECT {names} FROM _merged")
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _statuses AS
        SELECT member_id, interest_id, 'opted_in' AS status
        FROM _people WHERE interest_id IS NOT NULL
        """
    )
    interests.set_statuses(con, "_statuses", upload)
    con.execute("DROP TABLE _statuses; DROP TABLE _merged; DROP TABLE _people")


RULES = KindRules(
    UploadKind.CONSTITUENT, header=True, validate=validate, resolve=resolve, apply=apply
)
