"""What kind of upload a file is, from its name alone (SPEC section 2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from segpipe import attentive
from segpipe.ingest.errors import UploadRejected


class UploadKind(StrEnum):
    CONSTITUENT = "constituent"
    SEGMENTATION = "segmentation"
    INTEREST_XREF = "interest_xref"
    EVENTS = "events"
    MANUAL_SEGMENT = "manual_segment"
    SUBSCRIBER_SEGMENT = "subscriber_segment"
    SUPPRESSION = "suppression"


_SUFFIX = r"\.csv(\.gz)?$"
_PATTERNS: list[tuple[UploadKind, re.Pattern[str], str]] = [
    (UploadKind.CONSTITUENT, re.compile(r"^constituents.*" + _SUFFIX, re.I), "constituents*.csv"),
    (UploadKind.SEGMENTATION, re.compile(r"^segmentation.*" + _SUFFIX, re.I), "segmentation*.csv"),
    (
        UploadKind.INTEREST_XREF,
        re.compile(r"^interest_xref.*" + _SUFFIX, re.I),
        "interest_xref*.csv",
    ),
    (UploadKind.EVENTS, re.compile(r"^events.*" + _SUFFIX, re.I), "events*.csv"),
    (
        UploadKind.MANUAL_SEGMENT,
        re.compile(r"^manual_segment.*" + _SUFFIX, re.I),
        "manual_segment*.csv",
    ),
    (
        UploadKind.SUBSCRIBER_SEGMENT,
        re.compile(attentive.FILE_NAME_PATTERN, re.I),
        attentive.FILE_NAME_GRAMMAR,
    ),
    (UploadKind.SUPPRESSION, re.compile(r"^suppression.*" + _SUFFIX, re.I), "suppression*.csv"),
]
ACCEPTED_PATTERNS = ", ".join(pattern for _, _, pattern in _PATTERNS)


def kind_of(file_name: str) -> UploadKind:
    """The upload kind named by `file_name`, or UploadRejected listing the accepted patterns."""
    for kind, pattern, _ in _PATTERNS:
        if pattern.match(file_name):
            return kind
    raise UploadRejected(
        file_name, f"file name matches no upload kind; accepted patterns: {ACCEPTED_PATTERNS}"
    )


@dataclass(frozen=True)
class Delivery:
    """An Attentive delivery: every file of one domain and one date."""

    domain: str
    day: date
    part: int


def delivery_of(file_name: str) -> Delivery:
    """Parse `{domain}_subscriber_segment_{YYYYMMDD}[_{n}].csv`, with a real calendar date."""
    match = attentive.DELIVERY_FILE.match(file_name)
    if not match:
        raise UploadRejected(
            file_name,
            f"subscriber segment files must be named {attentive.FILE_NAME_GRAMMAR}",
        )
    stamp = match["date"]
    try:
        day = date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))
    except ValueError:
        raise UploadRejected(file_name, f"{stamp} is not a valid YYYYMMDD date") from None
    return Delivery(domain=match["domain"].lower(), day=day, part=int(match["n"] or 0))


def printable(name: str) -> str:
    """A file name as it may be printed: control characters (terminal escape codes, newlines)
    written as Python escapes, `\x1b` for ESC, so a name can neither rewrite the terminal nor
    forge a line of output."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
