"""How an erased person's identifiers are recognized in text: files, reports, event logs.

Emails, phones and text ids are found anywhere in a line, bounded so that `ann@x.org` does not
match `joann@x.org`; a phone in any of the forms people type it (separators between digits,
with or without its country code). Numeric ids match only as a whole field of a column named
for them (`ids_in_columns`), or as a whole markdown cell, since digits alone appear everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from segpipe.warehouse.erasures import EXTERNAL_ID, ErasedPeople
from segpipe.warehouse.suppressions import IdentifierKind

_PHONE_SEPARATORS = r"[\s().\-]*"
ID_KINDS = (IdentifierKind.MEMBER_ID, IdentifierKind.CONS_ID)


def _bounded(value: str, inner: str = r"A-Za-z0-9_\-") -> str:
    return rf"(?:^|[^{inner}]){re.escape(value)}(?:$|[^{inner}])"


def _phone(e164: str) -> list[str]:
    digits = e164.lstrip("+")
    forms = [digits]
    if digits.startswith("1") and len(digits) == 11:  # NANP: also without the country code
        forms.append(digits[1:])
    return [rf"(?:^|[^0-9])\+?{_PHONE_SEPARATORS.join(form)}(?:$|[^0-9])" for form in forms]


@dataclass(frozen=True)
class Needles:
    """Regexes (Rust/Python-compatible syntax) that mark text as naming the erased person."""

    anywhere: tuple[str, ...]  # match anywhere in a line
    ids: dict[str, frozenset[str]]  # numeric id kind -> values, matched by column or cell
    literals: tuple[str, ...]  # plain strings, lower-cased, for a cheap first filter

    @property
    def line_pattern(self) -> str:
        """The anywhere-patterns as one case-insensitive regex."""
        return "(?i)" + self.alternatives

    @property
    def alternatives(self) -> str:
        return "|".join(f"(?:{p})" for p in self.anywhere)

    @property
    def cell_pattern(self) -> str | None:
        """A markdown cell (Dagster metadata previews) holding one of the ids."""
        ids = sorted({v for values in self.ids.values() for v in values})
        if not ids:
            return None
        return r"\|\s*(?:" + "|".join(re.escape(v) for v in ids) + r")\s*\|"


def needles(found: ErasedPeople) -> Needles:
    anywhere, literals = [], []
    for email in found.identifiers.get(IdentifierKind.EMAIL, ()):
        anywhere.append(_bounded(email, r"A-Za-z0-9._%+\-"))
        literals.append(email.lower())
    for phone in found.identifiers.get(IdentifierKind.PHONE, ()):
        anywhere += _phone(phone)
        literals.append(phone[-4:])  # any typed form ends with these
    ids: dict[str, frozenset[str]] = {}
    for kind in ID_KINDS:
        values = found.identifiers.get(kind, set())
        numeric = frozenset(v for v in values if v.isdigit())
        ids[kind] = numeric
        for text_id in sorted(values - numeric):  # text member ids are as distinctive as emails
            anywhere.append(_bounded(text_id))
        literals += sorted(values)
    for external_id in found.identifiers.get(EXTERNAL_ID, ()):
        anywhere.append(_bounded(external_id))
        literals.append(external_id.lower())
    return Needles(tuple(anywhere), ids, tuple(dict.fromkeys(literals)))
