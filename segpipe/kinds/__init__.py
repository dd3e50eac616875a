"""One module per upload kind; RULES maps each kind to its rules."""

from dataclasses import replace
from functools import partial
from pathlib import Path

from segpipe.ingest.attributes import AttributeDeclarationError, read_declarations
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


def rules_for(kind: UploadKind, file_name: str, segments_yaml: Path | None = None) -> KindRules:
    """The kind's rules; a constituent file's follow the attribute types `segments_yaml`
    declares (a section segpipe cannot use rejects the file, saying what to fix)."""
    if kind not in RULES:
        raise UploadRejected(file_name, f"{kind} uploads are not supported yet")
    rules = RULES[kind]
    if kind == UploadKind.CONSTITUENT and segments_yaml is not None:
        try:
            declared = read_declarations(segments_yaml)
        except AttributeDeclarationError as error:
            raise UploadRejected(file_name, str(error)) from None
        rules = replace(
            rules,
            validate=partial(constituent.validate, declared=declared),
            apply=partial(constituent.apply, declared=declared),
        )
    return rules


__all__ = ["RULES", "KindRules", "UploadContext", "rules_for"]
