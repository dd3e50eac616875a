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
    NAMES_PERSON,
    PERSON_IDENTIFIERS,
    KindRules,
    UploadContext,
    column_or_null,
    names_person,
    not_found,
    person_schema_columns,
    require_columns,
    resolve_accepted,
    supersede_earlier_rows,
)
from segpipe.vocabulary import InterestStatus, RowOutcome
from segpipe.warehouse import before_images, interests, migrate, suppressions
from segpipe.warehouse.catalog import constituent_columns
from segpipe.warehouse.schema import alter_column_type
from segpipe.warehouse.scratch import name_for, scratches
from segpipe.warehouse.sql import frame, quote, registered

TEXT_FIELDS = ["external_id", "first_name", "last_name"]
STANDARD = [
    "cons_id",
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
    "target_cons_id",
    "cons_owner",
    "member_owner",
    "email_owner",
    "email_owner_member_id",
    "conflict",
    "interest_known",
    "person_key",
}


def _flag(name: str) -> pa.Column:
    return pa.Column(
        pl.String, pa.Check.isin(["true", "false"], error=f"{name}: {BOOLEAN_HINT}"), nullable=True
    )


SCHEMA = pa.DataFrameSchema(
    {
        "cons_id": columns.whole_number("cons_id"),
        "email": columns.email(),
        "phone": columns.phone(),
        "email_opt_in": _flag("email_opt_in"),
        "sms_opt_in": _flag("sms_opt_in"),
        "interest_id": columns.whole_number("interest_id"),
        NAMES_PERSON: person_schema_columns()[NAMES_PERSON],
    },
    name="constituent",
    strict=False,
)


def attribute_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in STANDARD and not c.startswith("_")]


def validate(
    file_name: str, raw: pl.DataFrame, declared: dict[str, attributes.Declared] | None = None
) -> pl.DataFrame:
    """Raw text -> canonical rows; attribute columns typed by `declared` (segments.yaml's
    `attributes:`), the others inferred from the rows that pass (ingest/attributes.py)."""
    declared = {n: d for n, d in (declared or {}).items() if n in attribute_columns(raw)}
    problems = {name: f"_problem_{i}" for i, name in enumerate(declared)}
    require_columns(file_name, raw, PERSON_IDENTIFIERS)
    clash = sorted(BOOKKEEPING & set(raw.columns))
    if clash:
        raise UploadRejected(
            file_name, f"column {clash[0]} is kept by segpipe and cannot be uploaded"
        )
    present = lambda name: column_or_null(raw, name)  # noqa: E731
    canonical = raw.select(
        LINE,
        present("cons_id").alias("cons_id"),
        present("member_id").alias("member_id"),
        normalize.email(present("email")).alias("email"),
        normalize.phone_e164(present("phone")).alias("phone"),
        columns.phone_problem(present("phone")),
        *[present(name).alias(name) for name in TEXT_FIELDS],
        normalize.boolean_word(present("email_opt_in")).alias("email_opt_in"),
        normalize.boolean_word(present("sms_opt_in")).alias("sms_opt_in"),
        present("interest_id").alias("interest_id"),
        *attribute_columns(raw),
        *[attributes.problem(n, d, pl.col(n)).alias(problems[n]) for n, d in declared.items()],
    ).with_columns(names_person())
    checked = reject_failures(canonical, SCHEMA, [columns.PHONE_PROBLEM, *problems.values()]).drop(
        NAMES_PERSON
    )
    good = checked.filter(pl.col(OUTCOME).is_null())
    inferred = {
        name: attributes.sql_type(good[name])
        for name in attribute_columns(raw)
        if name not in declared
    }
    return checked.with_columns(
        pl.col("cons_id", "interest_id").cast(pl.Int64, strict=False),
        pl.col("email_opt_in", "sms_opt_in") == "true",
        *[attributes.typed(pl.col(name), sql).alias(name) for name, sql in inferred.items()],
        *[attributes.reader(d)(pl.col(name)).alias(name) for name, d in declared.items()],
    )


_EMAIL = normalize.mask_email_sql("email")


# Luminate's Standard Constituent Import: a row updates the person with its cons_id (none: the
# row is refused), else with its member_id (none: a new person, or the person with its email who
# has no member_id yet), else with its email, else it is a new person. Identifiers that name two
# different people refuse the row, naming both.
def _judge_sql(accepted: str) -> str:
    """Each accepted row (the view `accepted`) with the person it updates, or its conflict."""
    return f"""
WITH matched AS (
    SELECT v.* EXCLUDE ({OUTCOME}, {REASON}),
           by_cons.cons_id AS cons_owner,
           by_member.cons_id AS member_owner,
           by_email.cons_id AS email_owner,
           by_email.member_id AS email_owner_member_id,
           v.interest_id IS NULL OR i.interest_id IS NOT NULL AS interest_known
    FROM {accepted} v
    LEFT JOIN constituents by_cons ON by_cons.cons_id = v.cons_id
    LEFT JOIN constituents by_member ON by_member.member_id = v.member_id
    LEFT JOIN constituents by_email ON by_email.email = v.email
    LEFT JOIN interests i ON i.interest_id = v.interest_id
),
targeted AS (
    SELECT *,
        CASE
            WHEN cons_id IS NOT NULL THEN cons_owner
            WHEN member_id IS NOT NULL
                THEN coalesce(member_owner,
                              CASE WHEN email_owner_member_id IS NULL THEN email_owner END)
            ELSE email_owner
        END AS target_cons_id,
        CASE
            WHEN NOT interest_known THEN 'unknown interest_id ' || interest_id
            WHEN cons_id IS NOT NULL AND cons_owner IS NULL
                THEN {not_found("cons_id", "cons_id")}
            WHEN cons_id IS NOT NULL AND member_owner <> cons_owner
                THEN 'cons_id ' || cons_id || ' and member_id ' || member_id
                     || ' name different constituents (member_id ' || member_id
                     || ' is cons_id ' || member_owner || ')'
            WHEN cons_id IS NOT NULL AND email_owner <> cons_owner
                THEN 'cons_id ' || cons_id || ' and email ' || {_EMAIL}
                     || ' name different constituents (the email is cons_id ' || email_owner || ')'
            WHEN member_owner IS NOT NULL AND email_owner <> member_owner
                THEN 'member_id ' || member_id || ' and email ' || {_EMAIL}
                     || ' name different constituents (cons_id ' || member_owner
                     || ' and cons_id ' || email_owner || ')'
            WHEN cons_id IS NULL AND member_id IS NOT NULL AND member_owner IS NULL
                 AND email_owner_member_id IS NOT NULL
                THEN 'member_id ' || member_id || ' and email ' || {_EMAIL}
                     || ' name different constituents (the email is member_id '
                     || email_owner_member_id || ', cons_id ' || email_owner || ')'
        END AS conflict
    FROM matched
),
keyed AS (
    SELECT *,
        coalesce(target_cons_id::VARCHAR, 'member:' || member_id, 'email:' || email,
                 'line:' || {LINE}) AS person_key
    FROM targeted
),
counted AS (
    -- Among the rows with no conflict of their own: a row refused for its own reason does not
    -- take a good row of the same member_id or email down with it.
    SELECT *,
        email IS NOT NULL
            AND min(person_key) FILTER (conflict IS NULL) OVER by_email
                <> max(person_key) FILTER (conflict IS NULL) OVER by_email
            AS email_split,
        member_id IS NOT NULL
            AND min(person_key) FILTER (conflict IS NULL) OVER by_member
                <> max(person_key) FILTER (conflict IS NULL) OVER by_member
            AS member_split
    FROM keyed
    WINDOW by_email AS (PARTITION BY email), by_member AS (PARTITION BY member_id)
)
SELECT * EXCLUDE (conflict, email_split, member_split),
    CASE WHEN conflict IS NOT NULL OR email_split OR member_split
        THEN '{RowOutcome.REJECTED}' END
        AS {OUTCOME},
    CASE
        WHEN conflict IS NOT NULL THEN conflict
        WHEN member_split
            THEN 'member_id ' || member_id
                 || ' is on another row of this file for a different constituent'
        WHEN email_split THEN 'email is on another row of this file for a different constituent'
    END AS {REASON}
FROM counted
"""


def _resolved_sql(accepted: str) -> str:
    """The judged rows without the columns that only served the judging."""
    return (
        "SELECT * EXCLUDE (cons_owner, member_owner, email_owner, email_owner_member_id, "
        f"interest_known) FROM ({_judge_sql(accepted)})"
    )


def resolve(
    con: duckdb.DuckDBPyConnection, validated: str, resolved: str, upload: UploadContext
) -> None:
    resolve_accepted(con, validated, resolved, _resolved_sql)
    supersede_earlier_rows(con, resolved, ("person_key",))
    con.execute(f"ALTER TABLE {resolved} DROP COLUMN person_key")
    suppressions.note_overridden_opt_ins(con, resolved, person="target_cons_id")


def _widen_attribute_columns(
    con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, declared: dict[str, attributes.Declared]
) -> dict[str, str]:
    """Add or widen a warehouse column for every attribute the file carries, inside the upload's
    transaction; returns all columns. A declared column takes its declared type when every value
    it holds reads as that type; otherwise it widens (text holds anything), so no upload fails
    on a type."""
    existing = constituent_columns(con)
    for name in attribute_columns(rows.drop("target_cons_id")):
        incoming = attributes.sql_type_of(rows[name].dtype)
        if name not in existing:
            con.execute(f"ALTER TABLE constituents ADD COLUMN {quote(name)} {incoming}")
        elif name in declared and existing[name] != declared[name].sql:
            _convert_to_declared(con, name, existing[name], declared[name], incoming)
        elif (wanted := attributes.wider(existing[name], incoming)) != existing[name]:
            alter_column_type(con, "constituents", name, wanted)
    return constituent_columns(con)


def _convert_to_declared(con, name: str, current: str, declared, incoming: str) -> None:
    """Retype a column that earlier uploads filled before its type was declared: each distinct
    value is read with the declared rule (polars, as a new file's cells are) and the column is
    rewritten from that mapping. A value that does not read keeps the column wide."""
    values = frame(con, f"SELECT DISTINCT {quote(name)}::VARCHAR AS v FROM constituents")
    values = values.drop_nulls().with_columns(t=attributes.reader(declared)(pl.col("v")))
    if values["t"].null_count():
        if (wanted := attributes.wider(current, incoming)) != current:
            alter_column_type(con, "constituents", name, wanted)
        return
    entry = f"STRUCT(k VARCHAR, v {declared.sql})"
    con.execute(
        f"SET VARIABLE _declared_values = map_from_entries(?::{entry}[])",
        [[{"k": k, "v": v} for k, v in values.iter_rows()]],
    )
    using = f"getvariable('_declared_values')[{quote(name)}::VARCHAR]"
    alter_column_type(con, "constituents", name, declared.sql, using)
    con.execute("RESET VARIABLE _declared_values")


def _merged_column(name: str, sql_type: str, incoming: set[str]) -> str:
    """A blank cell or an absent column keeps what the warehouse has."""
    if name == "cons_id":
        return "p.cons_id"
    if name == "created_at":
        return "coalesce(c.created_at, $at)"
    if name == "updated_at":
        return "$at"
    if name == "upload_id":
        return "$upload_id"
    if name in incoming:
        return f"coalesce(p.{quote(name)}::{sql_type}, c.{quote(name)})"
    return f"c.{quote(name)}"


def apply(
    con: duckdb.DuckDBPyConnection,
    resolved: str,
    upload: UploadContext,
    declared: dict[str, attributes.Declared] | None = None,
) -> None:
    # Back to polars: attribute columns are widened from the rows' types (a small file kind).
    rows = frame(
        con, f"SELECT * EXCLUDE ({OUTCOME}, {REASON}) FROM {resolved} WHERE {OUTCOME} IS NULL"
    )
    # A column the file left blank says nothing: it must not add or retype a warehouse column.
    attributes_sent = attribute_columns(rows.drop("target_cons_id"))
    blank = [c for c in attributes_sent if rows[c].null_count() == rows.height]
    rows = rows.drop(blank)
    columns = _widen_attribute_columns(con, rows, declared or {})
    with scratches(con, "people", "merged", "statuses") as (people, merged, statuses):
        _apply_people(con, rows, columns, upload, people, merged, statuses)


def _apply_people(con, rows, columns, upload, people: str, merged: str, statuses: str) -> None:
    """The people of `rows` (a new cons_id for each new one) into `people`, merged with their
    stored columns into `merged`, which replaces them in constituents; their interest_id
    opt-ins through `statuses`. The three names are scratch tables of the caller's."""
    with registered(con, name_for("applied_rows"), rows) as applied:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {people} AS
            SELECT * EXCLUDE (target_cons_id, cons_id),
                   coalesce(target_cons_id,
                            ? + row_number() OVER (
                                PARTITION BY target_cons_id IS NULL ORDER BY {LINE}) - 1
                   ) AS cons_id
            FROM {applied}
            """,
            [migrate.next_cons_id(con)],
        )
    incoming = set(rows.columns) - {"cons_id", LINE, "target_cons_id", "interest_id"}
    select = ", ".join(
        f"{_merged_column(name, kind, incoming)} AS {quote(name)}" for name, kind in columns.items()
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {merged} AS
        SELECT {select}
        FROM {people} p LEFT JOIN constituents c ON c.cons_id = p.cons_id
        """,
        {"at": upload.at, "upload_id": upload.upload_id},
    )
    before_images.keep(con, upload.upload_id, "constituents", f"SELECT cons_id FROM {people}")
    con.execute(f"DELETE FROM constituents WHERE cons_id IN (SELECT cons_id FROM {people})")
    names = ", ".join(quote(name) for name in columns)
    con.execute(f"INSERT INTO constituents ({names}) SELECT {names} FROM {merged}")
    migrate.record_cons_ids(con)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {statuses} AS
        SELECT cons_id, interest_id, '{InterestStatus.OPTED_IN}' AS status
        FROM {people} WHERE interest_id IS NOT NULL
        """
    )
    interests.set_statuses(con, statuses, upload)


RULES = KindRules(
    UploadKind.CONSTITUENT, header=True, validate=validate, resolve=resolve, apply=apply
)
