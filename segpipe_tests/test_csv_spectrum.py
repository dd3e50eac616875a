"""csv-spectrum's acid test for CSV parsers (segpipe_tests/data/csv_spectrum, BSD-2-Clause),
one case per file: the reader gives upstream's expected records, in segpipe's documented
shape (headers normalized, cells trimmed, empty cells null), each at its physical line.

One case differs on purpose: location_coordinates writes bare quotes inside unquoted values
(`37°36'37.8"N`), which lenient parsers keep as text and segpipe refuses row by row (SPEC
section 2: a stray quote rejects its row), so the file's one row is refused at line 2."""

import json
from pathlib import Path

import pytest

from segpipe.ingest.reader import normalize_header, read_file

SPECTRUM = Path(__file__).parent / "data" / "csv_spectrum"
CASES = sorted(path.stem for path in (SPECTRUM / "csvs").glob("*.csv"))
REFUSED = {"location_coordinates": 'a quote (") inside an unquoted value'}
# The physical line each record starts on (header on line 1): multi-line values shift the next.
LINES = {"newlines": [2, 3, 5], "newlines_crlf": [2, 3, 5], "quotes_and_newlines": [2, 5]}


def expected(case: str) -> list[dict]:
    records = json.loads((SPECTRUM / "json" / f"{case}.json").read_text("utf-8"))
    return [
        {normalize_header(name): (value.strip() or None) for name, value in record.items()}
        for record in records
    ]


def test_every_case_is_here():
    assert len(CASES) == 12  # upstream 2.0.0 has 12 cases; a lost file must not pass quietly


@pytest.mark.parametrize("case", sorted(set(CASES) - set(REFUSED)))
def test_csv_spectrum_case_reads_as_upstream_expects(case):
    frame = read_file(SPECTRUM / "csvs" / f"{case}.csv", header=True)

    assert frame["_malformed"].null_count() == frame.height
    assert frame.drop("_line", "_malformed").to_dicts() == expected(case)
    first = list(range(2, 2 + frame.height))
    assert frame["_line"].to_list() == LINES.get(case, first)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_csv_spectrum_bare_quotes_are_refused_at_their_line(case):
    frame = read_file(SPECTRUM / "csvs" / f"{case}.csv", header=True)

    assert frame["_line"].to_list() == [2]
    assert frame["_malformed"][0].startswith(REFUSED[case])
