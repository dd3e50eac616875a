"""Types for the free-form attribute columns of constituent files (SPEC section 2, "Values").

A column is typed by its declaration in segments.yaml (`attributes: {lifetime_value: number,
first_gift_date: {type: date, format: "%m/%d/%Y"}, zip: text}`) or, undeclared, inferred from
the whole column, conservatively: every non-empty value must read as the type, and a value with
a leading zero (`02134`) is text, as a spreadsheet's ZIP code or account number is.

Declared columns read what spreadsheets write where it is unambiguous: numbers with a currency
symbol, thousands separators or accounting parentheses (`$1,250.00`, `(75.00)`); dates in ISO
8601, other formats only when declared. A cell that does not read is a per-row problem
("lifetime_value: '12 dollars' is not a number").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import polars as pl
import yaml

from segpipe.ingest import normalize
from segpipe.ingest.reader import normalize_header


class AttributeType(StrEnum):
    """The types segments.yaml may declare, as a user writes them."""

    NUMBER = "number"
    DATE = "date"
    TIMESTAMP = "timestamp"
    BOOLEAN = "boolean"
    TEXT = "text"


# The warehouse (DuckDB) type of each declared type, and the way back for messages.
SQL_TYPES = {
    AttributeType.NUMBER: "DOUBLE",
    AttributeType.DATE: "DATE",
    AttributeType.TIMESTAMP: "TIMESTAMP",
    AttributeType.BOOLEAN: "BOOLEAN",
    AttributeType.TEXT: "VARCHAR",
}
DECLARED_AS = {"BIGINT": AttributeType.NUMBER, **{v: k for k, v in SQL_TYPES.items()}}


class AttributeDeclarationError(ValueError):
    """segments.yaml's `attributes:` section cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Declared:
    type: AttributeType
    format: str | None = None  # a strftime format for date/timestamp columns not in ISO 8601

    @property
    def sql(self) -> str:
        return SQL_TYPES[self.type]


def read_declarations(path: Path) -> dict[str, Declared]:
    """Column name (as headers are matched) -> declaration; none without a file or section.
    Raises AttributeDeclarationError for a section segpipe cannot use."""
    if not path.exists():
        return {}
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return {}  # the segments refresh reports an unreadable file, with its position
    section = document.get("attributes") if isinstance(document, dict) else None
    return parse_declarations(section or {})


def parse_declarations(section: object) -> dict[str, Declared]:
    if not isinstance(section, dict):
        raise AttributeDeclarationError("segments.yaml: 'attributes' maps column names to types")
    return {normalize_header(str(name)): _declared(name, spec) for name, spec in section.items()}


def _declared(name: object, spec: object) -> Declared:
    kinds = ", ".join(AttributeType)
    written, fmt = (
        (spec.get("type"), spec.get("format")) if isinstance(spec, dict) else (spec, None)
    )
    if written not in set(AttributeType):
        raise AttributeDeclarationError(
            f"segments.yaml: attribute '{name}': type must be one of {kinds}, not {written!r}"
        )
    declared = Declared(AttributeType(written), fmt)
    if fmt is not None and declared.type not in (AttributeType.DATE, AttributeType.TIMESTAMP):
        raise AttributeDeclarationError(
            f"segments.yaml: attribute '{name}': a format is for date and timestamp columns"
        )
    return declared


# Numbers as spreadsheets write them: an optional sign or accounting parentheses, a currency
# symbol, digits with or without comma thousands separators, a decimal point.
_CURRENCY = r"[$€£¥₹]"
_PLAIN_NUMBER = r"^(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)$"
_GROUPED_NUMBER = r"^[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?$"


def spreadsheet_number(value: pl.Expr) -> pl.Expr:
    """`$1,250.00` -> 1250.0, `(75.00)` -> -75.0, `-€3` -> -3.0; null for anything else
    (`1.250,00` is ambiguous and not read)."""
    text = normalize.trimmed(value)
    parenthesized = text.str.contains(r"^\(.*\)$")
    text = text.str.strip_prefix("(").str.strip_suffix(")").str.strip_chars()
    negative = parenthesized ^ text.str.contains(rf"^-\s*{_CURRENCY}?|^{_CURRENCY}\s*-")
    core = text.str.replace_all(rf"^[-\s]*{_CURRENCY}?[-\s]*", "").str.strip_chars()
    digits = pl.when(core.str.contains(_GROUPED_NUMBER)).then(core.str.replace_all(",", ""))
    digits = digits.when(core.str.contains(_PLAIN_NUMBER)).then(core)
    number = digits.otherwise(None).cast(pl.Float64, strict=False)
    return pl.when(negative).then(-number).otherwise(number)


def _date(fmt: str | None) -> Callable[[pl.Expr], pl.Expr]:
    return lambda c: normalize.trimmed(c).str.to_date(fmt or "%Y-%m-%d", strict=False)


def _timestamp(fmt: str | None) -> Callable[[pl.Expr], pl.Expr]:
    if fmt is None:
        return normalize.utc_timestamp
    return lambda c: normalize.trimmed(c).str.to_datetime(fmt, strict=False, time_unit="us")


def _boolean(c: pl.Expr) -> pl.Expr:
    return normalize.boolean_word(c).replace_strict(
        {"true": True, "false": False}, default=None, return_dtype=pl.Boolean
    )


def reader(declared: Declared) -> Callable[[pl.Expr], pl.Expr]:
    """Text -> the declared type; null where a cell does not read."""
    return {
        AttributeType.NUMBER: spreadsheet_number,
        AttributeType.DATE: _date(declared.format),
        AttributeType.TIMESTAMP: _timestamp(declared.format),
        AttributeType.BOOLEAN: _boolean,
        AttributeType.TEXT: lambda c: c,
    }[declared.type]


def problem(name: str, declared: Declared, value: pl.Expr) -> pl.Expr:
    """ "lifetime_value: '12 dollars' is not a number" for a cell that does not read as its
    column's declared type; null otherwise."""
    shown = f"a {declared.type}" + (f" ({declared.format})" if declared.format else "")
    return (
        pl.when(value.is_not_null() & reader(declared)(value).is_null())
        .then(pl.lit(f"{name}: '") + _masked_cell(value) + pl.lit(f"' is not {shown}"))
        .otherwise(None)
    )


def _masked_cell(value: pl.Expr) -> pl.Expr:
    """A cell quoted in a reason, which also reaches Dagster metadata: an email or a phone in
    the wrong column is masked as previews mask them, and a long cell is cut."""
    return (
        pl.when(value.str.contains("@"))
        .then(normalize.mask_email(value))
        .when(value.str.replace_all(r"[\s().\-+]", "").str.contains(r"^[0-9]{10,15}$"))
        .then(normalize.mask_phone(value))
        .otherwise(value.str.slice(0, 40))
    )


# Inference for undeclared columns, tried in order; the first that reads every non-empty value
# is the column's type. Whole numbers and decimals refuse leading zeros (`02134` stays text).
_INTEGER = r"^-?(?:0|[1-9][0-9]{0,17})$"
_DECIMAL = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$"


def _matching(pattern: str, dtype: pl.DataType) -> Callable[[pl.Expr], pl.Expr]:
    return lambda c: pl.when(c.str.contains(pattern)).then(c.cast(dtype, strict=False))


_INFERRED: list[tuple[str, pl.DataType, Callable[[pl.Expr], pl.Expr]]] = [
    ("BIGINT", pl.Int64, _matching(_INTEGER, pl.Int64)),
    ("DOUBLE", pl.Float64, _matching(_DECIMAL, pl.Float64)),
    ("DATE", pl.Date, _date(None)),
    ("TIMESTAMP", pl.Datetime("us"), normalize.utc_timestamp),
    ("BOOLEAN", pl.Boolean, _boolean),
]  # fmt: skip


def sql_type(column: pl.Series) -> str:
    """The narrowest SQL type that holds every non-empty value of a string column."""
    values = column.drop_nulls()
    if values.is_empty():
        return "VARCHAR"
    for sql, _, read in _INFERRED:
        if pl.select(read(pl.lit(values)).null_count()).item() == 0:
            return sql
    return "VARCHAR"


def sql_type_of(dtype: pl.DataType) -> str:
    """The warehouse type of an already typed attribute column."""
    for name, candidate, _ in _INFERRED:
        if dtype == candidate:
            return name
    return "VARCHAR"


def typed(value: pl.Expr, sql: str) -> pl.Expr:
    """A string column read as the inferred `sql` type."""
    for name, dtype, read in _INFERRED:
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
