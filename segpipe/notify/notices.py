"""What a warning says: one `Notice` per thing that went wrong (or, optionally, went right).

A notice names the file, segment or destination and the reason, with counts. Every line is
passed through `mask_text` when the notice is built, so no raw email or phone number reaches a
mail server or a webhook whatever an error message carried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from segpipe.ingest.normalize import mask_text


class NoticeKind(StrEnum):
    FILE_REJECTED = "file_rejected"
    SYNC_FAILED = "sync_failed"
    DELIVERY_FAILED = "delivery_failed"
    SEGMENT_SIZE_MOVED = "segment_size_moved"
    EXPORT_READY = "export_ready"
    RUN_FAILED = "run_failed"


# Sent only to those who asked for it (`export_ready: true`); the others are problems.
GOOD_NEWS = {NoticeKind.EXPORT_READY}


@dataclass(frozen=True)
class Notice:
    """`subject`: one line; `lines`: the details; `destination`: whose settings also apply;
    `counts`: the numbers behind it (files, rows, segments), for a webhook's receiver."""

    kind: NoticeKind
    subject: str
    lines: tuple[str, ...] = ()
    destination: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "subject", mask_text(self.subject))
        object.__setattr__(self, "lines", tuple(mask_text(line) for line in self.lines))

    @property
    def text(self) -> str:
        return "\n".join([self.subject, "", *self.lines])

    def payload(self) -> dict:
        """The webhook's JSON body; `text` makes it readable by Slack-style incoming hooks."""
        return {
            "source": "segpipe",
            "kind": str(self.kind),
            "subject": self.subject,
            "text": self.text,
            "destination": self.destination,
            "counts": self.counts,
        }
