"""Types for the free-form attribute columns of constituent files, inferred per whole column."""

from __future__ import annotations

import polars as pl

from segpipe.ingest import normalize

# Tried in order; the first that reads every non-empty value of a column is its type.
_READERS: list[tuple[str, pl.DataType, callable]] = [
    ("BIGINT", pl.Int64, lambda c: c.cast(pl.Int64, strict=False)),
    ("DOUBLE", pl.Float64, lambda c: c.cast(pl.Float64, strict=False)),
    ("DATE", pl.Date, lambda c: c.str.to_date("%Y-%m-%d", strict=False)),
    (
        "TIMESTAMP",
        pl.Datetime("us"),
        lambda c: c.str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False),
    ),
    (
        "BOOLEAN",
        pl.Boolean,
        lambda c: normalize.boolean_word(c).replace_strict(
            {"true": True, "false": False}, default=None, return_dtype=pl.Boolean
        ),
    ),
]


def sql_type(column: pl.Series) -> str:
    """The narrowest SQL type that holds every non-empty value of a string column."""
    values = column.drop_nulls()
    if values.is_empty():
        return "VARCHAR"
    for sql, _, read in _READERS:
        if pl.select(read(pl.lit(values)).null_count()).item() == 0:
            return sql
    return "VARCHAR"


def sql_type_of(dtype: pl.DataType) -> str:
    """The warehouse type of an already typed attribute column."""
    for name, candidate, _ in _READERS:
        if dtype == candidate:
            return name
    return "VARCHAR"


def typed(value: pl.Expr, sql: str) -> pl.Expr:
    for name, dtype, read in _READERS:
        if name == sql:
            return read(value).cast(dtype)
    return value


def wider(existing: str, incoming: str) -> str:
    """The type a warehouse column must have to hold both what it has and what arrives."""
    if existing == incoming:
        return existing
    if {existing, incoming} == {"BIGINT", "DOUBLE"}:
        return "DOUBLE"
    if {existing, incoming} == {"DATE", "TIMESTAMP"}:
        return "TIMESTAMP"
    return "VARCHAR"
