"""The one masking rule for text built from file content (SPEC section 3): every email and phone
number in a message is masked before it reaches `uploads.error`, a log line or Dagster metadata.

`jane@example.org` -> `j***@example.org` and `+1 (202) 555-0123` -> `***-***-0123`, the forms
the previews use. Shorter numbers (interest ids, counts, line numbers) and dates stay readable.
"""

from __future__ import annotations

import polars as pl

_NOT_IN_ADDRESS = r"\s@,;:'\"<>()\[\]|"
EMAIL_IN_TEXT = rf"([^{_NOT_IN_ADDRESS}]?)[^{_NOT_IN_ADDRESS}]*@([^{_NOT_IN_ADDRESS}]+)"
# E.164 (a `+`, then 8 to 15 digits with separators) or North American 3-3-4 digits with an
# optional leading 1; separators: spaces, dots, hyphens, parentheses, and the underscores a
# normalized header name has in their place. A number starts where a run of digits starts
# (`before`: the start or a non-digit, put back), and the digits that run on after it are
# masked with it: a match inside a longer run (a date and a phone written together,
# `20261130_4155550155` or `202611304155550155`) would otherwise leave the phone's digits side
# by side in what is shown.
_SEPARATOR = r"[\s().\-_]"
PHONE_IN_TEXT = (
    r"(?P<before>^|\D)"
    rf"(?:\+\d(?:{_SEPARATOR}*\d){{3,10}}{_SEPARATOR}*"
    rf"|(?:1{_SEPARATOR}?)?\(?\d{{3}}\)?{_SEPARATOR}?\d{{3}}{_SEPARATOR}?)"
    r"(?P<last4>\d{4})\d*"
)


def mask_expr(text: pl.Expr) -> pl.Expr:
    """A String expression with every email and phone number in it masked."""
    emails_masked = text.str.replace_all(EMAIL_IN_TEXT, "${1}***@${2}")
    return emails_masked.str.replace_all(PHONE_IN_TEXT, "${before}***-***-${last4}")


def mask(text: str) -> str:
    """`text` with every email and phone number masked: mask_expr on one value, so messages
    and metadata columns follow the same rule."""
    return pl.select(mask_expr(pl.lit(text, pl.String))).item()


def display_name_expr(file_names: pl.Expr) -> pl.Expr:
    """`display_name` of a String column of file names."""
    return mask_expr(file_names)


def display_name(file_name: str) -> str:
    """A received file's name wherever it is shown or becomes an id (upload_id, logs, metadata,
    `uploads.error`, the terminal): `mask`ed, since a sender chose it and it may carry an
    address or a number (`vip_list_from_jane.doe@example.org.csv` -> `v***@example.org.csv`).
    Only the name as received is parsed (kind, Attentive's domain and date, duplicates) and the
    archive keeps it as received: this is for showing, never for reading back."""
    return mask(file_name)
