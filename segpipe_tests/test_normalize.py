"""The phone formats SPEC section 2 lists, through the vectorized E.164 normalizer."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from segpipe import attentive
from segpipe.ingest import normalize

PHONES = [
    # the spec's four shapes, bare (area code 212: NANP area codes start with 2-9)
    ("2124567890", "+12124567890"),
    ("212-456-7890", "+12124567890"),
    ("1212-456-7890", "+12124567890"),
    ("12124567890", "+12124567890"),
    # with + and country code
    ("+12124567890", "+12124567890"),
    ("+1 212-456-7890", "+12124567890"),
    ("+1212-456-7890", "+12124567890"),
    ("+44 20 7946 0958", "+442079460958"),
    # spaces, dots and parentheses tolerated
    ("(212) 456-7890", "+12124567890"),
    ("212.456.7890", "+12124567890"),
    ("212 456 7890", "+12124567890"),
    ("1 (212) 456.7890", "+12124567890"),
    ("+1 (212) 456 7890", "+12124567890"),
    ("  1-212-456-7890  ", "+12124567890"),
]
NOT_PHONES = ["12345", "456-7890", "21234567890", "212-456-789O", "+1 212 456 78", "phone", "+"]


@pytest.mark.parametrize(("written", "e164"), PHONES)
def test_listed_phone_formats_become_e164(written: str, e164: str):
    normalized = pl.select(normalize.phone_e164(pl.lit(written))).item()
    assert normalized == e164
    assert pl.select(pl.lit(normalized).str.contains(attentive.E164_PATTERN)).item()


def test_one_expression_normalizes_a_whole_column():
    column = pl.DataFrame({"phone": [written for written, _ in PHONES]})
    normalized = column.select(normalize.phone_e164(pl.col("phone")).alias("e164"))
    assert normalized["e164"].to_list() == [e164 for _, e164 in PHONES]


@pytest.mark.parametrize("written", NOT_PHONES)
def test_other_values_are_left_for_the_schema_to_reject(written: str):
    normalized = pl.select(normalize.phone_e164(pl.lit(written))).item()
    assert normalized == written.strip()
    assert not pl.select(pl.lit(normalized).str.contains(attentive.E164_PATTERN)).item()


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("0123456789", normalize.PHONE_NOT_NANP),  # area code starting with 0
        ("1-123-456-7890", normalize.PHONE_NOT_NANP),  # area code starting with 1
        ("(212) 155-0187", normalize.PHONE_NOT_NANP),  # exchange starting with 1
        ("+44 20 7946 095", normalize.PHONE_NOT_OF_COUNTRY),  # a digit short for London
        ("+999 1234 5678", normalize.PHONE_NOT_OF_COUNTRY),  # no such country code
        ("12345", normalize.PHONE_NOT_A_NUMBER),
    ],
)
def test_invalid_phones_carry_the_reason(written: str, problem: str):
    assert pl.select(normalize.phone_problem(pl.lit(written))).item() == problem
    assert pl.select(normalize.phone_e164(pl.lit(written))).item() == written


def test_numbers_of_other_countries_are_checked_for_their_country():
    written = pl.DataFrame({"phone": ["+33 6 12 34 56 78", "+49 221 669 9330", "+61 2 9374 4000"]})
    checked = written.select(
        normalize.phone_e164(pl.col("phone")).alias("phone"),
        normalize.phone_problem(pl.col("phone")).alias("p"),
    )
    assert checked["phone"].to_list() == ["+33612345678", "+492216699330", "+61293744000"]
    assert checked["p"].null_count() == 3


# Exports once took any `+1` and ten digits for a US number and wrote its national digits,
# while ingest refuses a +1 number whose area code or exchange starts with 0 or 1: one NANP
# rule (attentive.NANP_PATTERN) now decides both. Ingest's was right: Attentive takes E.164
# (`+`, a first digit 1-9, at most 15 digits) and NANP numbers as 10 national digits.
@pytest.mark.parametrize(
    ("e164", "nanp"),
    [("+12124567890", True), ("+11234567890", False), ("+12121567890", False),
     ("+442079460958", False)],
)  # fmt: skip
def test_ingest_and_attentive_files_agree_on_north_american_numbers(e164: str, nanp: bool):
    accepted = pl.select(normalize.phone_problem(pl.lit(e164))).item() is None
    written = duckdb.sql(f"SELECT {attentive.phone_sql(repr(e164))}").fetchall()[0][0]
    assert written == (e164[2:] if nanp else e164)
    if e164.startswith("+1"):
        assert accepted == nanp
    for pattern in (attentive.E164_PATTERN, attentive.NANP_PATTERN):
        in_polars = pl.select(pl.lit(e164).str.contains(pattern)).item()
        in_duckdb = duckdb.sql(f"SELECT regexp_matches({e164!r}, '{pattern}')").fetchall()[0][0]
        assert in_polars == in_duckdb
