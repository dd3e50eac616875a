"""One rule for every cell segpipe writes for a person or a spreadsheet to open: exports
(`members.csv`, adds, removes, Attentive files) and the errors reports under rejected/.

A value a spreadsheet would run as a formula starts with `=`, `+`, `-`, `@`, a tab or a carriage
return (OWASP, "CSV injection"); it gets a leading `'`, which spreadsheets show as text. A valid
E.164 phone starts with `+` too and is left as it is. The rule is rendered twice from the same
patterns: as DuckDB SQL (exports are written by COPY) and as a polars expression (reports).
"""

from __future__ import annotations

import polars as pl

from segpipe.attentive import E164_PATTERN as E164

FORMULA_START = "^[=+\\-@\\t\\r]"


def neutralized_sql(expression: str) -> str:
    """SQL that prefixes `'` to the text `expression` when a spreadsheet would execute it."""
    return (
        f"CASE WHEN regexp_matches({expression}, '{FORMULA_START}') "
        f"AND NOT regexp_matches({expression}, '{E164}') "
        f"THEN '''' || {expression} ELSE {expression} END"
    )


def neutralized(value: pl.Expr) -> pl.Expr:
    """The same rule as `neutralized_sql`, for a polars String expression."""
    risky = value.str.contains(FORMULA_START) & ~value.str.contains(E164)
    return pl.when(risky).then(pl.lit("'") + value).otherwise(value)


def neutralized_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Every String column of `frame` neutralized (other types cannot hold a formula)."""
    text = [name for name, kind in frame.schema.items() if kind == pl.String]
    return frame.with_columns(neutralized(pl.col(name)).alias(name) for name in text)
