"""Vectorized canonical forms of the values audience files carry.

Each function takes and returns a polars expression. A value that cannot be put in canonical form
is returned unchanged (trimmed), so the kind's pandera schema rejects it with a reason; nothing
here decides what is valid.
"""

from __future__ import annotations

import polars as pl

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$"
E164_PATTERN = r"^\+[1-9][0-9]{7,14}$"
WHOLE_NUMBER_PATTERN = r"^[0-9]{1,18}$"

TRUE_WORDS = ["y", "yes", "t", "true", "1"]
FALSE_WORDS = ["n", "no", "f", "false", "0"]
OPT_IN_WORDS = ["in", "opt-in", "optin", "add", "subscribe", *TRUE_WORDS]
OPT_OUT_WORDS = ["out", "opt-out", "optout", "remove", "unsubscribe", *FALSE_WORDS]


def email(value: pl.Expr) -> pl.Expr:
    return value.str.strip_chars().str.to_lowercase()


def phone_e164(value: pl.Expr, default_country_code: str = "1") -> pl.Expr:
    """E.164 from the formats the spec lists; US (+1) when no country code is given.

    Spaces, dots, hyphens and parentheses are separators. Ten digits are a national US number;
    eleven digits starting with 1 carry the US country code; a leading `+` carries its own.
    """
    raw = value.str.strip_chars()
    compact = raw.str.replace_all(r"[\s().\-]", "")
    digits = compact.str.strip_prefix("+")
    well_formed = compact.str.contains(r"^\+?[0-9]+$")
    length = digits.str.len_chars()
    with_plus = compact.str.starts_with("+")
    nanp = digits.str.starts_with("1")
    normalized = (
        pl.when(~well_formed)
        .then(None)
        .when(with_plus & nanp & (length == 11))
        .then("+" + digits)
        .when(with_plus & ~nanp & length.is_between(8, 15))
        .then("+" + digits)
        .when(~with_plus & (length == 10))
        .then(pl.lit("+" + default_country_code) + digits)
        .when(~with_plus & nanp & (length == 11))
        .then("+" + digits)
        .otherwise(None)
    )
    return normalized.fill_null(raw)


def boolean_word(value: pl.Expr) -> pl.Expr:
    """`"Yes"` -> `"true"`, `"0"` -> `"false"`; anything else stays as written."""
    lowered = value.str.strip_chars().str.to_lowercase()
    return (
        pl.when(lowered.is_in(TRUE_WORDS))
        .then(pl.lit("true"))
        .when(lowered.is_in(FALSE_WORDS))
        .then(pl.lit("false"))
        .otherwise(value)
    )


def opt_status(value: pl.Expr) -> pl.Expr:
    """`"Subscribe"` -> `"opted_in"`, `"opt-out"` -> `"opted_out"`; anything else as written."""
    lowered = value.str.strip_chars().str.to_lowercase()
    return (
        pl.when(lowered.is_in(OPT_IN_WORDS))
        .then(pl.lit("opted_in"))
        .when(lowered.is_in(OPT_OUT_WORDS))
        .then(pl.lit("opted_out"))
        .otherwise(value)
    )


# One masking rule for emails, used by polars (previews) and DuckDB (reasons built in SQL).
_MASKED_LOCAL_PART = r"^(.)[^@]*@"


def mask_email(value: pl.Expr) -> pl.Expr:
    """`jane@example.org` -> `j***@example.org`."""
    return value.str.replace(_MASKED_LOCAL_PART, "${1}***@")


def mask_email_sql(column: str) -> str:
    """DuckDB SQL for `mask_email` of the text expression `column`."""
    return f"regexp_replace({column}, '{_MASKED_LOCAL_PART}', '\\1***@')"


def mask_phone(value: pl.Expr) -> pl.Expr:
    """`+12025550123` -> `***-***-0123`."""
    return pl.lit("***-***-") + value.str.slice(-4)
