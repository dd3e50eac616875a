"""The phone formats SPEC section 2 lists, through the vectorized E.164 normalizer."""

from __future__ import annotations

import polars as pl
import pytest

from segpipe.ingest import normalize

PHONES = [
    # the spec's four shapes, bare
    ("1234567890", "+11234567890"),
    ("123-456-7890", "+11234567890"),
    ("1123-456-7890", "+11234567890"),
    ("11234567890", "+11234567890"),
    # with + and country code
    ("+11234567890", "+11234567890"),
    ("+1 123-456-7890", "+11234567890"),
    ("+1123-456-7890", "+11234567890"),
    ("+44 20 7946 0958", "+442079460958"),
    # spaces, dots and parentheses tolerated
    ("(123) 456-7890", "+11234567890"),
    ("123.456.7890", "+11234567890"),
    ("123 456 7890", "+11234567890"),
    ("1 (123) 456.7890", "+11234567890"),
    ("+1 (123) 456 7890", "+11234567890"),
    ("  1-123-456-7890  ", "+11234567890"),
]
NOT_PHONES = ["12345", "456-7890", "21234567890", "123-456-789O", "+1 123 456 78", "phone", "+"]


@pytest.mark.parametrize(("written", "e164"), PHONES)
def test_listed_phone_formats_become_e164(written: str, e164: str):
    normalized = pl.select(normalize.phone_e164(pl.lit(written))).item()
    assert normalized == e164
    assert pl.select(pl.lit(normalized).str.contains(normalize.E164_PATTERN)).item()


def test_one_expression_normalizes_a_whole_column():
    column = pl.DataFrame({"phone": [written for written, _ in PHONES]})
    normalized = column.select(normalize.phone_e164(pl.col("phone")).alias("e164"))
    assert normalized["e164"].to_list() == [e164 for _, e164 in PHONES]


@pytest.mark.parametrize("written", NOT_PHONES)
def test_other_values_are_left_for_the_schema_to_reject(written: str):
    normalized = pl.select(normalize.phone_e164(pl.lit(written))).item()
    assert normalized == written.strip()
    assert not pl.select(pl.lit(normalized).str.contains(normalize.E164_PATTERN)).item()
