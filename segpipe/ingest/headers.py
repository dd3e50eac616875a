"""The anchors' own header names, accepted as aliases of segpipe's columns: the one place they
are listed (the README's alias table mirrors ALIASES).

Names are compared after `reader.normalize_header` (lower case, spaces and hyphens as `_`), so
Luminate's `PRIMARY_EMAIL` and Mailchimp's `Email Address` arrive here as `primary_email` and
`email_address`.
"""

from __future__ import annotations

from collections.abc import Sequence

from segpipe.ingest.errors import UploadRejected

# alias (normalized) -> segpipe column, with the product whose exports carry it. Luminate's
# CONS_ID, MEMBER_ID, FIRST_NAME, LAST_NAME, INTEREST_ID and INTEREST_NAME already normalize to
# segpipe's names; they are listed so the table says so.
ALIASES: dict[str, tuple[str, str]] = {
    "cons_id": ("cons_id", "Luminate Online (CONS_ID)"),
    "member_id": ("member_id", "Luminate Online (MEMBER_ID)"),
    "primary_email": ("email", "Luminate Online (PRIMARY_EMAIL)"),
    "first_name": ("first_name", "Luminate Online (FIRST_NAME); Mailchimp, Klaviyo (First Name)"),
    "last_name": ("last_name", "Luminate Online (LAST_NAME); Mailchimp, Klaviyo (Last Name)"),
    "interest_id": ("interest_id", "Luminate Online (INTEREST_ID)"),
    "interest_name": ("interest_name", "Luminate Online (INTEREST_NAME)"),
    "id": ("member_id", "Customer.io (id)"),
    "email_address": ("email", "Mailchimp, Klaviyo (Email Address)"),
    "phone_number": ("phone", "Mailchimp, Klaviyo (Phone Number)"),
}


def canonical_names(file_name: str, written: Sequence[str], names: Sequence[str]) -> list[str]:
    """segpipe's column name for each header cell. `written` is the header as received, `names`
    the same cells normalized.

    Raises UploadRejected, naming both cells as written, when two columns mean the same thing
    (`email` and `PRIMARY_EMAIL`)."""
    canonical = [ALIASES.get(name, (name, ""))[0] for name in names]
    first_cell: dict[str, str] = {}
    for cell, name in zip(written, canonical, strict=True):
        if name in first_cell:
            raise UploadRejected(
                file_name,
                f"columns '{first_cell[name].strip()}' and '{cell.strip()}' both mean {name}; "
                "keep one of them",
            )
        first_cell[name] = cell
    return canonical
