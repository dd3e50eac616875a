"""Interest cross-reference: foreign interest values mapped to internal interests."""

from __future__ import annotations

import duckdb
import pandera.polars as pa
import polars as pl

from segpipe.ingest.filenames import UploadKind
from segpipe.ingest.reader import LINE
from segpipe.ingest.validate import OUTCOME, REASON, reject_failures
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
from segpipe.vocabulary import RowOutcome
from segpipe.warehouse import before_images, interests

SCHEMA = pa.DataFrameSchema(
    {
        "foreign_value": pa.Column(pl.String, nullable=False),
        "interest_id": columns.whole_number("interest_id"),
        "names_interest": columns.holds(
            "row names no interest: interest_name and interest_id are empty"
        ),
    },
    name="interest_xref",
    strict=False,
)


def validate(file_name: str, raw: pl.DataFrame) -> pl.DataFrame:
    require_columns(file_name, raw, ("foreign_value",), ("interest_id", "interest_name"))
    name = column_or_null(raw, "interest_name")
    canonical = raw.select(
        LINE,
        column_or_null(raw, "foreign_source").fill_null("default").alias("foreign_source"),
        pl.col("foreign_value"),
        name.alias("interest_name"),
        pl.when(name.is_null()).then(column_or_null(raw, "interest_id")).alias("interest_id"),
    ).with_columns(
        (pl.col("interest_name").is_not_null() | pl.col("interest_id").is_not_null()).alias(
            "names_interest"
        )
    )
    checked = reject_failures(canonical, SCHEMA)
    return checked.drop("names_interest").with_columns(
        pl.col("interest_id").cast(pl.Int64, strict=False)
    )


def _judge_sql(accepted: str) -> str:
    """Each accepted row (the view `accepted`) with its interest, refused for an unknown id."""
    return f"""
SELECT v.* EXCLUDE ({OUTCOME}, {REASON}),
       coalesce(by_name.interest_id, by_id.interest_id) AS resolved_interest_id,
       CASE WHEN v.interest_id IS NOT NULL AND by_id.interest_id IS NULL
            THEN '{RowOutcome.REJECTED}' END AS {OUTCOME},
       CASE WHEN v.interest_id IS NOT NULL AND by_id.interest_id IS NULL
            THEN 'unknown interest_id ' || v.interest_id END AS {REASON}
FROM {accepted} v
LEFT JOIN interests by_name ON lower(by_name.name) = lower(v.interest_name)
LEFT JOIN interests by_id ON by_id.interest_id = v.interest_id
"""


def resolve(
    con: duckdb.DuckDBPyConnection, validated: str, resolved: str, upload: UploadContext
) -> None:
    resolve_accepted(con, validated, resolved, _judge_sql)
    supersede_earlier_rows(con, resolved, ("foreign_source", "foreign_value"))


def apply(con: duckdb.DuckDBPyConnection, resolved: str, upload: UploadContext) -> None:
    with applied_rows(con, resolved) as applied:
        interests.create_named_interests(con, applied, upload)
        before_images.keep(
            con,
            upload.upload_id,
            "interest_xref",
            f"SELECT foreign_source, foreign_value FROM {applied}",
        )
        con.execute(
            f"""
            DELETE FROM interest_xref x WHERE EXISTS (
                SELECT 1 FROM {applied} r
                WHERE r.foreign_source = x.foreign_source AND r.foreign_value = x.foreign_value
            )
            """
        )
        con.execute(
            f"""
            INSERT INTO interest_xref
            SELECT r.foreign_source, r.foreign_value,
                   coalesce(r.resolved_interest_id, i.interest_id), ?, ?
            FROM {applied} r
            LEFT JOIN interests i
              ON r.resolved_interest_id IS NULL AND lower(i.name) = lower(r.interest_name)
            """,
            [upload.upload_id, upload.at],
        )


RULES = KindRules(
    UploadKind.INTEREST_XREF, header=True, validate=validate, resolve=resolve, apply=apply
)
