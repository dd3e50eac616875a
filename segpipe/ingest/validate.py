"""Run a kind's pandera schema over an eager frame and turn its failures into row rejections.

Every row keeps its `_line`; a row that fails any check gets `_outcome = "rejected"` and a
`_reason` a person can act on (the check's own message, or "missing <column>").
"""

from __future__ import annotations

from collections.abc import Sequence

import pandera.polars as pa
import polars as pl

from segpipe.ingest.reader import LINE, MALFORMED
from segpipe.vocabulary import RowOutcome

OUTCOME = "_outcome"
REASON = "_reason"


def reject_failures(
    canonical: pl.DataFrame, schema: pa.DataFrameSchema, problems: Sequence[str] = ()
) -> pl.DataFrame:
    """`canonical` plus `_outcome`/`_reason` for the rows the schema refuses (eager: pandera
    skips data checks on lazy frames).

    `problems` name String columns of `canonical` whose value, when not null, is a reason that
    depends on the row (a phone's country, an attribute's cell): the row is rejected with the
    first of them, which wins over the schema's more general message for the same row. They
    are dropped from the result."""
    return _reject_problems(_reject_schema_failures(canonical, schema), problems)


def _reject_problems(frame: pl.DataFrame, problems: Sequence[str]) -> pl.DataFrame:
    if not problems:
        return frame
    reason = pl.coalesce(*problems, REASON)
    return frame.with_columns(
        reason.alias(REASON),
        pl.when(reason.is_not_null()).then(pl.lit(RowOutcome.REJECTED.value)).alias(OUTCOME),
    ).drop(*problems)


def _reject_schema_failures(canonical: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    try:
        schema.validate(canonical, lazy=True)
        failures = None
    except pa.errors.SchemaErrors as errors:
        failures = errors.failure_cases
    frame = canonical.with_columns(
        pl.lit(None, pl.String).alias(OUTCOME), pl.lit(None, pl.String).alias(REASON)
    )
    if failures is None or failures.height == 0:
        return frame
    if failures["index"].null_count():
        whole = failures.filter(pl.col("index").is_null())
        raise RuntimeError(f"schema {schema.name} does not fit its own frame: {whole.to_dicts()}")
    reasons = (
        failures.with_columns(
            pl.when(pl.col("check") == "not_nullable")
            .then(pl.lit("missing ") + pl.col("column"))
            .otherwise(pl.col("check"))
            .alias(REASON),
            pl.col("column")
            .replace_strict(
                {name: i for i, name in enumerate(canonical.columns)},
                default=len(canonical.columns),
            )
            .alias("_order"),
        )
        .sort("index", "_order", "check_number", nulls_last=True)
        .group_by("index", maintain_order=True)
        .agg(pl.col(REASON).first())
    )
    # Failure cases carry row positions: put each reason at its row. A join on a row index
    # would cost time in proportion to the file; placing the few failures costs next to nothing.
    reason = pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias(REASON)
    reason = reason.scatter(reasons["index"].cast(pl.Int64), reasons[REASON])
    return frame.with_columns(
        reason.alias(REASON),
        pl.when(reason.is_not_null()).then(pl.lit(RowOutcome.REJECTED.value)).alias(OUTCOME),
    )


def reject_malformed(validated: pl.DataFrame, raw: pl.DataFrame) -> pl.DataFrame:
    """A row whose field count differs from the header's is rejected, whatever else it holds:
    its values may sit in the wrong columns."""
    bad = raw.filter(pl.col(MALFORMED).is_not_null()).select(LINE, MALFORMED)
    if bad.is_empty():
        return validated
    return (
        validated.join(bad, on=LINE, how="left")
        .with_columns(
            pl.when(pl.col(MALFORMED).is_not_null())
            .then(pl.lit(RowOutcome.REJECTED.value))
            .otherwise(pl.col(OUTCOME))
            .alias(OUTCOME),
            pl.coalesce(MALFORMED, REASON).alias(REASON),
        )
        .drop(MALFORMED)
    )


__all__ = ["LINE", "OUTCOME", "REASON"]
