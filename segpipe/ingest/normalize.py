"""Vectorized canonical forms of the values audience files carry, and the rules they must meet.

Each function takes and returns a polars expression over a whole column. A value that cannot be
put in canonical form is returned unchanged (trimmed), so the kind's pandera schema rejects it
with a reason; the patterns and `*_problem` expressions here are the one home of each rule.
"""

from __future__ import annotations

import phonenumbers
import polars as pl

from segpipe.attentive import NANP_PATTERN
from segpipe.ingest import masking
from segpipe.vocabulary import InterestStatus

# Emails (SPEC section 2 "Values"): a dot-atom local part (RFC 5322 atext, Unicode letters
# allowed as RFC 6531 does) of at most 64 characters, no leading, trailing or doubled dot;
# a domain of labels (letters, digits, inner hyphens, at most 63 characters; internationalized
# letters allowed) ending in an alphabetic or punycode (xn--) top-level label; 254 at most.
# No bounded repeats of Unicode classes in these patterns: a `{0,61}` over \p{L} (a label's
# 63-character limit) made the regex many times slower, so label length is not checked.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~\-\p{L}\p{M}\p{N}]+"
_LABEL = r"[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}\-]*[\p{L}\p{M}\p{N}])?"
_TOP_LABEL = r"(?:[\p{L}\p{M}][\p{L}\p{M}]+|xn--[a-z0-9\-]+)"
EMAIL_PATTERN = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_TOP_LABEL}$"
EMAIL_LOCAL_PATTERN = r"^[^@]{1,64}@"
EMAIL_MAX = 254
# What trimming removes: ASCII whitespace, no-break spaces, zero-width characters, the BOM.
_TRIMMED = " \t\n\r\x0b\x0c\u00a0\u2007\u202f\u200b\u200c\u200d\u2060\ufeff"

WHOLE_NUMBER_PATTERN = r"^[0-9]{1,18}$"
PHONE_NOT_A_NUMBER = "invalid phone number: not a phone number (10 digits, or + and a country code)"
PHONE_NOT_NANP = "invalid phone number: a North American area code and exchange start with 2-9"
PHONE_NOT_OF_COUNTRY = "invalid phone number: not a valid number for its country code"

# Timestamps: ISO 8601 / RFC 3339 extended format, date alone or with hh:mm[:ss[.fraction]],
# `T` or a space between, and Z, ±hh, ±hhmm or ±hh:mm (none means UTC).
TIMESTAMP_FORMS = (
    "2026-11-05, 2026-11-05T21:30, 2026-11-05 21:30:15, 2026-11-05T21:30:15.250Z, "
    "2026-11-05T21:30+01, 2026-11-05T21:30:00+0100, 2026-11-05T21:30:00-05:00"
)
_TIMESTAMP = (
    r"^(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$"
)

TRUE_WORDS = ["y", "yes", "t", "true", "1"]
FALSE_WORDS = ["n", "no", "f", "false", "0"]
OPT_IN_WORDS = ["in", "opt-in", "optin", "add", "subscribe", *TRUE_WORDS]
OPT_OUT_WORDS = ["out", "opt-out", "optout", "remove", "unsubscribe", *FALSE_WORDS]


def trimmed(value: pl.Expr) -> pl.Expr:
    """Surrounding whitespace removed, no-break and zero-width spaces included."""
    return value.str.strip_chars(_TRIMMED)


def email(value: pl.Expr) -> pl.Expr:
    """Trimmed and lower-cased; whether it is an email is `email_valid`'s question."""
    return trimmed(value).str.to_lowercase()


def email_valid(value: pl.Expr) -> pl.Expr:
    """True for a canonical email meeting the rule above (null stays null). Control characters
    fail the pattern: no character class in it admits them."""
    return (
        value.str.contains(EMAIL_PATTERN)
        & value.str.contains(EMAIL_LOCAL_PATTERN)
        & (value.str.len_chars() <= EMAIL_MAX)
    )


def _phone_parts(value: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(E.164 candidate or null, written with `+`, well formed) for a written phone."""
    compact = trimmed(value).str.replace_all(r"[\s().\-]", "")
    digits = compact.str.strip_prefix("+")
    length = digits.str.len_chars()
    with_plus = compact.str.starts_with("+")
    nanp = digits.str.starts_with("1")
    well_formed = compact.str.contains(r"^\+?[0-9]+$")
    candidate = (
        pl.when(~well_formed)
        .then(None)
        .when(with_plus & nanp & (length == 11))
        .then("+" + digits)
        .when(with_plus & ~nanp & length.is_between(7, 15))
        .then("+" + digits)
        .when(~with_plus & (length == 10))
        .then("+1" + digits)
        .when(~with_plus & nanp & (length == 11))
        .then("+" + digits)
        .otherwise(None)
    )
    return candidate, with_plus, well_formed


def _valid_for_country(candidates: pl.Series) -> pl.Series:
    """Whether each +CC number outside North America is valid for its country, by Google's
    libphonenumber metadata (the `phonenumbers` port); asked once per distinct number."""
    distinct = candidates.drop_nulls().unique()
    return candidates.is_in([number for number in distinct if _valid_number(number)])


def _valid_number(e164: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:  # e.g. a country code no country has
        return False


def phone_problem(value: pl.Expr) -> pl.Expr:
    """Why a written phone is not a valid number (a reason a person acts on), null when it is
    or when the cell is empty. NANP for +1 (SPEC section 2), libphonenumber for the rest."""
    candidate, _, _ = _phone_parts(value)
    north_american = candidate.str.starts_with("+1")
    elsewhere = pl.when(~north_american).then(candidate)
    return (
        pl.when(value.is_null() | (trimmed(value) == ""))
        .then(None)
        .when(candidate.is_null())
        .then(pl.lit(PHONE_NOT_A_NUMBER))
        .when(north_american & ~candidate.str.contains(NANP_PATTERN))
        .then(pl.lit(PHONE_NOT_NANP))
        .when(
            ~north_american
            & ~elsewhere.map_batches(_valid_for_country, pl.Boolean, is_elementwise=True)
        )
        .then(pl.lit(PHONE_NOT_OF_COUNTRY))
    )


def phone_e164(value: pl.Expr) -> pl.Expr:
    """E.164 from the formats the spec lists; US (+1) when no country code is given.

    Spaces, dots, hyphens and parentheses are separators. Ten digits are a national US number;
    eleven digits starting with 1 carry the US country code; a leading `+` carries its own.
    A value that is not a valid number (`phone_problem`) is returned trimmed, as written."""
    candidate, _, _ = _phone_parts(value)
    return pl.when(phone_problem(value).is_null()).then(candidate).otherwise(trimmed(value))


def utc_timestamp(value: pl.Expr) -> pl.Expr:
    """ISO 8601 / RFC 3339 text -> naive UTC datetime (µs); an offset (Z, ±hh, ±hhmm, ±hh:mm)
    is honoured, none means UTC, a date alone is midnight. Any other text is null.

    The accepted forms are TIMESTAMP_FORMS; each is rewritten to one full form
    (`YYYY-MM-DDTHH:MM:SS.f+hh:mm`) and parsed once."""
    parts = trimmed(value).str.extract_groups(_TIMESTAMP)
    date, hm, sec, frac, offset = (parts.struct.field(str(i)) for i in range(1, 6))
    offset = offset.str.to_uppercase().str.replace("Z", "+00:00")
    offset = (
        pl.when(offset.str.len_chars() == 3)
        .then(offset + ":00")
        .when(offset.str.len_chars() == 5)
        .then(offset.str.slice(0, 3) + ":" + offset.str.slice(3, 2))
        .otherwise(offset)
    )
    full = pl.concat_str(
        date,
        pl.lit("T"),
        hm.fill_null("00:00"),
        pl.lit(":"),
        sec.fill_null("00"),
        pl.lit("."),
        frac.fill_null("0"),
        offset.fill_null("+00:00"),
    )
    parsed = full.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC", time_unit="us"
    )
    return parsed.dt.replace_time_zone(None)


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
        .then(pl.lit(InterestStatus.OPTED_IN.value))
        .when(lowered.is_in(OPT_OUT_WORDS))
        .then(pl.lit(InterestStatus.OPTED_OUT.value))
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


def mask_text(text: str) -> str:
    """`text` with every email and phone number in it masked, for messages: the one masking
    rule of `segpipe.ingest.masking`."""
    return masking.mask(text)
