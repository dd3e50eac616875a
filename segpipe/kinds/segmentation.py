"""Segmentation upload (Luminate): opt people in to or out of interests."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandera.polars as pa
import polars as pl

from segpipe.ingest import normalize
from segpipe.ingest.filenames import UploadKind
from segpipe.ingest.reader import LINE
from segpipe.ingest.validate import OUTCOME, REASON, reject_failures
from segpipe.kinds import columns
from segpipe.kinds.base import (
    PERSON_IDENTIFIERS,
    BatchRules,
    KindRules,
    UploadContext,
    applied_rows,
    column_or_null,
    identifiers_used,
    names_person,
    person_id_types,
    person_identifiers,
    person_lookup,
    person_schema_columns,
    require_columns,
    resolve_accepted,
    supersede_earlier_rows,
)
from segpipe.vocabulary import InterestStatus, RowOutcome
from segpipe.warehouse import interests
from segpipe.warehouse.scratch import scratch, scratches
from segpipe.warehouse.sql import scalar
from segpipe.warehouse.uploads import BATCH_FILE

INTEREST_COLUMNS = ("interest_name", "interest_id", "foreign_interest")
OPT_VALUES_HINT = "use in/out, yes/no, y/n, true/false, 1/0, add/remove or subscribe/unsubscribe"

SCHEMA = pa.DataFrameSchema(
    {
        **person_schema_columns(),
        "interest_id": columns.whole_number("interest_id"),
        "opt": pa.Column(
            pl.String,
            pa.Check.isin(
                [status.value for status in InterestStatus],
                error=f"unrecognized opt value; {OPT_VALUES_HINT}",
            ),
        ),
        "names_interest": columns.holds(
            "row names no interest: interest_name, interest_id and foreign_interest are empty"
        ),
    },
    name="segmentation",
    strict=False,
)


def validate(file_name: str, raw: pl.DataFrame) -> pl.DataFrame:
    require_columns(file_name, raw, PERSON_IDENTIFIERS, INTEREST_COLUMNS, ("opt", "opt_in"))
    name, interest_id = column_or_null(raw, "interest_name"), column_or_null(raw, "interest_id")
    opt = pl.col("opt") if "opt" in raw.columns else pl.col("opt_in")
    canonical = raw.select(
        LINE,
        *person_identifiers(raw),
        # The first non-empty of name, ID, foreign value names the interest.
        name.alias("interest_name"),
        pl.when(name.is_null()).then(interest_id).alias("interest_id"),
        pl.when(name.is_null() & interest_id.is_null())
        .then(column_or_null(raw, "foreign_interest"))
        .alias("foreign_interest"),
        column_or_null(raw, "foreign_source").fill_null("default").alias("foreign_source"),
        normalize.opt_status(opt).alias("opt"),
    ).with_columns(
        names_person(),
        pl.any_horizontal(pl.col(INTEREST_COLUMNS).is_not_null()).alias("names_interest"),
    )
    checked = reject_failures(canonical, SCHEMA)
    return checked.drop("names_person", "names_interest").with_columns(
        person_id_types(), pl.col("interest_id").cast(pl.Int64, strict=False)
    )


# What the judge resolves away: a resolved row carries the person and interest it found, not
# the identifiers that named them. Carried through a big upload's resolve, member ids and
# emails (its widest columns) made DuckDB spill (README, "Design measurements").
_RESOLVED_AWAY = (*PERSON_IDENTIFIERS, "interest_id", "foreign_interest", "foreign_source")


def _judge_sql(
    accepted: str, people_by_email: str, people_by_member: str, used: set[str] | frozenset[str]
) -> str:
    """Each accepted row's (the view `accepted`) person and interest, and what becomes of the
    rows that find none."""
    joins, person, not_found = person_lookup(people_by_email, people_by_member, used=used)
    return f"""
WITH matched AS (
    SELECT v.* EXCLUDE ({OUTCOME}, {REASON}),
           {person} AS resolved_cons_id,
           {not_found} AS not_found,
           coalesce(by_name.interest_id, by_iid.interest_id, x.interest_id) AS resolved_interest_id
    FROM {accepted} v {joins}
    LEFT JOIN interests by_name ON lower(by_name.name) = lower(v.interest_name)
    LEFT JOIN interests by_iid ON by_iid.interest_id = v.interest_id
    LEFT JOIN interest_xref x
      ON x.foreign_source = v.foreign_source AND x.foreign_value = v.foreign_interest
)
SELECT * EXCLUDE (not_found, {", ".join(_RESOLVED_AWAY)}),
    CASE
        WHEN resolved_interest_id IS NULL AND interest_id IS NOT NULL THEN '{RowOutcome.REJECTED}'
        WHEN resolved_interest_id IS NULL AND foreign_interest IS NOT NULL
            THEN '{RowOutcome.REJECTED}'
        WHEN resolved_cons_id IS NULL THEN '{RowOutcome.IGNORED}'
    END AS {OUTCOME},
    CASE
        WHEN resolved_interest_id IS NULL AND interest_id IS NOT NULL
            THEN 'unknown interest_id ' || interest_id
        WHEN resolved_interest_id IS NULL AND foreign_interest IS NOT NULL
            THEN 'no cross-reference for foreign_interest ' || foreign_interest
                 || ' (foreign_source ' || foreign_source || ')'
        WHEN resolved_cons_id IS NULL THEN not_found
    END AS {REASON}
FROM matched
"""


# A person's last row for an interest wins; a new interest is keyed by its name until created.
# Integer columns, not one text key: cheaper to group 10M rows by.
LATEST_KEY = (
    "resolved_cons_id",
    "resolved_interest_id",
    "CASE WHEN resolved_interest_id IS NULL THEN lower(interest_name) END",
)


# DuckDB answers `email = ANY(list)` from the constituents email index only for a list of at
# most 50 values (longer ones scan the table), so a small upload's emails (and member ids,
# indexed the same way) are looked up 50 at a time; past INDEXED_VALUES the join is cheaper
# (README, "Design measurements").
INDEX_LIST_MAX = 50
INDEXED_VALUES = 1_000


# The identifiers looked up through the constituents' indexes for a small upload.
INDEXED_IDENTIFIERS = ("email", "member_id")


def _people_found(
    con: duckdb.DuckDBPyConnection, validated: str, into: tuple[str, ...]
) -> tuple[dict[str, str], set[str]]:
    """({identifier: the constituents a row may name by it}, the PERSON_IDENTIFIERS some row
    fills). For an upload of few rows, one statement counts the identifiers and lists the
    values of each INDEXED_IDENTIFIERS column (`_people_by` puts their people in the scratch
    tables `into`, in that order); a big upload's values are never listed (the statement reads
    at most FEW_ROWS + 1 rows) and it joins the whole table."""
    counted = ", ".join(f"count({name})" for name in PERSON_IDENTIFIERS)
    listed = ", ".join(
        f"list(DISTINCT {name}) FILTER ({name} IS NOT NULL)" for name in INDEXED_IDENTIFIERS
    )
    rows, *found = con.execute(
        f"SELECT count(*), {counted}, {listed} FROM (SELECT {', '.join(PERSON_IDENTIFIERS)} "
        f"FROM {validated} LIMIT {interests.FEW_ROWS + 1})"
    ).fetchone()
    if rows > interests.FEW_ROWS:
        return dict.fromkeys(INDEXED_IDENTIFIERS, "constituents"), identifiers_used(con, validated)
    counts, values = found[: len(PERSON_IDENTIFIERS)], found[len(PERSON_IDENTIFIERS) :]
    used = {name for name, count in zip(PERSON_IDENTIFIERS, counts, strict=True) if count}
    sources = {
        name: _people_by(con, name, given or [], table)
        for name, given, table in zip(INDEXED_IDENTIFIERS, values, into, strict=True)
    }
    return sources, used


def _people_by(con: duckdb.DuckDBPyConnection, column: str, values: list, into: str) -> str:
    """The constituents a row may name by `column` (email or member_id), given the upload's
    `values` of it: for a few values, only theirs, found through the column's index (the join's
    own filter would still scan a large part of the table) and put in the scratch table `into`;
    else the whole table, for the join. No values: no lookup (no row names anyone by it, so
    the judge leaves the identifier out)."""
    if not values or len(values) > INDEXED_VALUES:
        return "constituents"
    # The values as the statement's parameter ($1), sliced in SQL: no SET VARIABLE first.
    lookups = " UNION ALL ".join(
        f"SELECT cons_id, {column} FROM constituents WHERE {column} = "
        f"ANY($1[{first}:{first + INDEX_LIST_MAX - 1}])"
        for first in range(1, len(values) + 1, INDEX_LIST_MAX)
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS {lookups}", [values])
    return into


def _resolve(
    con: duckdb.DuckDBPyConnection, validated: str, resolved: str, latest_key: tuple[str, ...]
) -> None:
    with scratches(con, "upload_people_email", "upload_people_member_id") as into:
        people, used = _people_found(con, validated, into)
        resolve_accepted(
            con,
            validated,
            resolved,
            lambda accepted: _judge_sql(accepted, people["email"], people["member_id"], used),
        )
    supersede_earlier_rows(con, resolved, latest_key)


def resolve(
    con: duckdb.DuckDBPyConnection, validated: str, resolved: str, upload: UploadContext
) -> None:
    _resolve(con, validated, resolved, LATEST_KEY)


def resolve_batch(con: duckdb.DuckDBPyConnection, validated: str, resolved: str) -> None:
    """resolve for the rows of a batch: a row supersedes only rows of its own file."""
    _resolve(con, validated, resolved, (*LATEST_KEY, BATCH_FILE))


# The applied rows naming an interest no interest has: the upload creates it.
_CREATES = "resolved_interest_id IS NULL AND interest_name IS NOT NULL"


def _statuses_sql(applied: str, carried: str = "") -> str:
    """(cons_id, interest_id, status) of the applied rows `applied`, an interest named by a new
    name found by it (created just before), with the columns `carried` (SQL) first."""
    return f"""
        SELECT {carried} r.resolved_cons_id AS cons_id,
               coalesce(r.resolved_interest_id, i.interest_id) AS interest_id,
               r.opt AS status
        FROM {applied} r
        LEFT JOIN interests i
          ON r.resolved_interest_id IS NULL AND lower(i.name) = lower(r.interest_name)
        """


def apply(con: duckdb.DuckDBPyConnection, resolved: str, upload: UploadContext) -> None:
    # The statuses are a view the changes' lookup reads once: materializing the 10M-row bench
    # upload's statuses first cost a table write of their own.
    with (
        applied_rows(con, resolved) as applied,
        scratch(con, "statuses", view=True) as statuses,
    ):
        interests.create_named_interests(con, applied, upload)
        con.execute(f"CREATE TEMP VIEW {statuses} AS {_statuses_sql(applied)}")
        interests.set_statuses(con, statuses, upload)


def first_creating(con: duckdb.DuckDBPyConnection, resolved: str) -> int | None:
    """The first file of a batch whose rows name a new interest (which it creates)."""
    return scalar(
        con, f"SELECT min({BATCH_FILE}) FROM {resolved} WHERE {OUTCOME} IS NULL AND {_CREATES}"
    )


def apply_batch(
    con: duckdb.DuckDBPyConnection, resolved: str, batch: Sequence[UploadContext]
) -> None:
    """apply for a batch's rows. Only its last file may create interests (first_creating
    ends the batch there), so they get the ids and the before-images they would in turn."""
    last = len(batch) - 1
    with scratch(con, "statuses") as statuses:
        with (
            applied_rows(con, resolved) as applied,
            scratch(con, "last_file_rows", view=True) as last_rows,
        ):
            con.execute(
                f"CREATE TEMP VIEW {last_rows} AS "
                f"SELECT * FROM {applied} WHERE {BATCH_FILE} = {last}"
            )
            interests.create_named_interests(con, last_rows, batch[last])
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {statuses} AS "
                f"{_statuses_sql(applied, f'r.{BATCH_FILE},')}"
            )
        interests.set_statuses_batch(con, statuses, list(batch))


RULES = KindRules(
    UploadKind.SEGMENTATION,
    header=True,
    validate=validate,
    resolve=resolve,
    apply=apply,
    row_by_row=True,
    batch=BatchRules(resolve_batch, apply_batch, first_creating),
)
