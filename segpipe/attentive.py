"""Attentive's rules for subscriber segment files, in one place: what segpipe accepts from
Attentive-bound uploads and what it writes for an attentive destination follow the same text.

Source: Attentive's "Subscriber segment upload" (SFTP solution) guide, docs.attentive.com/pages/
developer-guides/sftp-solution/subscriber-segment-upload: files named
`{clientdomain}_subscriber_segment_{YYYYMMDD}_{file_number}.csv`, headerless
`identifier,segment name` rows, phones or emails (never both in one file), at most 500,000 rows
a file, a file naming an existing segment replaces its members. Dagster-free.
"""

from __future__ import annotations

import re
from datetime import datetime

MAX_ROWS = 500_000  # rows a file; a longer list is split over `_2`, `_3`, ... files

# Segment names: letters, digits, spaces, `_` and `-`, at most 64 characters.
SEGMENT_NAME_MAX = 64
SEGMENT_NAME_PATTERN = r"^[A-Za-z0-9 _-]+$"
SEGMENT_NAME = re.compile(rf"^[A-Za-z0-9 _-]{{1,{SEGMENT_NAME_MAX}}}$")

# Phones. E.164 (ITU-T): `+`, a country code whose first digit is 1-9, at most 15 digits in
# all. segpipe keeps numbers of at least 7 digits (no country's valid number is shorter;
# libphonenumber refuses them anyway), so one pattern serves validation, erasure and exports.
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
# A North American (NANP, +1) number: area code and exchange start with 2-9 (SPEC section 2).
# Attentive takes these as their 10 national digits; every other number goes as E.164.
NANP_PATTERN = r"^\+1[2-9][0-9]{2}[2-9][0-9]{6}$"

# File names. The domain is lower-case letters, digits, `.` and `-` (it becomes a file name).
DOMAIN = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_CSV = r"\.csv(\.gz)?$"
FILE_NAME_PATTERN = r"^.+_subscriber_segment_.*" + _CSV
FILE_NAME_GRAMMAR = "{domain}_subscriber_segment_{YYYYMMDD}[_{n}].csv"
DELIVERY_FILE = re.compile(
    r"^(?P<domain>[a-z0-9][a-z0-9.-]*)_subscriber_segment_(?P<date>\d{8})(?:_(?P<n>\d+))?" + _CSV,
    re.I,
)


def phone_sql(expression: str) -> str:
    """SQL for the E.164 phone `expression` as an Attentive file carries it: a North American
    number as its 10 national digits, any other as written. The same NANP rule as ingest's
    (`normalize.phone_problem`), so a number ingest refuses is never cut down to 10 digits."""
    return (
        f"CASE WHEN regexp_matches({expression}, '{NANP_PATTERN}') "
        f"THEN substr({expression}, 3) ELSE {expression} END"
    )


def file_name(domain: str, at: datetime, n: int) -> str:
    """The name of file `n` (1-based) of `domain`'s delivery on `at`'s date."""
    return f"{domain}_subscriber_segment_{at:%Y%m%d}_{n}.csv"
