"""One module per upload kind; RULES maps each kind to its rules."""

from segpipe.ingest.errors import UploadRejected
from segpipe.ingest.filenames import UploadKind
from segpipe.kinds import (
    constituent,
    events,
    interest_xref,
    manual,
    segmentation,
    subscriber,
    suppression,
)
from segpipe.kinds.base import KindRules, UploadContext

RULES: dict[UploadKind, KindRules] = {
    rules.kind: rules
    for rules in (
        constituent.RULES,
        segmentation.RULES,
        interest_xref.RULES,
        events.RULES,
        manual.RULES,
        subscriber.RULES,
        suppression.RULES,
    )
}


def rules_for(kind: UploadKind, file_name: str) -> KindRules:
    if kind not in RULES:
        raise UploadRejected(file_name, f"{kind} uploads are not supported yet")
    return RULES[kind]


__all__ = ["RULES", "KindRules", "UploadContext", "rules_for"]
