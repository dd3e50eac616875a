"""segpipe's words for the states it stores, one enum each (SPEC section 4, the warehouse).

String enums: a member equals the text the warehouse, the errors reports and the CLI carry
(`UploadStatus.APPLIED == "applied"`) and formats as it (`f"'{RowOutcome.REJECTED}'"` is SQL's
`'rejected'`), so stored values and file formats stay byte-identical. Dagster-free.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class UploadStatus(StrEnum):
    """`uploads.status`, and the status a run reports for a file."""

    APPLIED = "applied"
    REJECTED = "rejected"  # refused whole: nothing applied, an errors report says why
    HELD = "held"  # the removal guard found it too destructive: waits for --allow-large-removals
    DUPLICATE = "duplicate"  # the same bytes as an applied upload
    SKIPPED = "skipped"  # already applied or a duplicate: a re-run leaves it alone
    UNDONE = "undone"  # `segpipe undo` put back what it changed


# The statuses of a file refused whole: the run exits 2 and the sender is warned.
REFUSED = (UploadStatus.REJECTED, UploadStatus.HELD)


class ProblemKind(StrEnum):
    """What a problem of `segpipe run` is: it decides the exit code (segpipe.exit_codes) and who
    is warned."""

    FAILED = "failed"  # a step failed: exit 1
    HELD = "held"  # the removal guard held a sync: exit 2, until --allow-large-removals
    # A destination names a segment that does not exist: that sync alone is not done, exit 2.
    NOT_SYNCED = "not_synced"
    SEGMENTS_YAML = "segments_yaml"  # segments.yaml stopped the sync before any run: exit 1


class RowOutcome(StrEnum):
    """A row's `_outcome` (NULL in the scratch tables means applied) and the errors report's
    `outcome` column."""

    APPLIED = "applied"
    REJECTED = "rejected"  # refused: the errors report says why; the file's other rows apply
    IGNORED = "ignored"  # names no one, or no one segpipe may keep (reported, file applies)
    SUPERSEDED = "superseded"  # a later line of the same file names the same thing
    HELD = "held"  # the whole file, held by the removal guard (its errors report's one row)


class SegmentKind(StrEnum):
    """`segments.kind`: who owns a segment's members."""

    MANUAL = "manual"
    SUBSCRIBER = "subscriber"
    DATA_DRIVEN = "data_driven"
    INTEREST_GROUP = "interest_group"


class SyncMode(StrEnum):
    """A destination's `mode:` in segments.yaml (SPEC section 6), and `syncs.mode`."""

    MIRROR = "mirror"  # adds and removes: the destination holds the segment as it is (default)
    UPSERT = "upsert"  # adds only: the destination is never told to remove anyone


class GroupMode(StrEnum):
    """How a segment rule's group joins its conditions (segments.yaml `all:` / `any:`)."""

    ALL = "all"  # every condition holds
    ANY = "any"  # at least one holds


class ExportFormat(StrEnum):
    """A destination's `format:` in segments.yaml (SPEC section 6): its export files' shape."""

    CSV = "csv"  # members.csv, adds.csv, removes.csv with the key and the chosen fields (default)
    ATTENTIVE = "attentive"  # headerless `phone,segment` / `email,segment` files, one domain


class Channel(StrEnum):
    """What a destination contacts people on, and so whose consent it needs (SPEC 6): `email`
    needs `email_opt_in`, `sms` needs `sms_opt_in`, and neither may be suppressed on that
    channel; `none` (a warehouse or ad-audience copy that contacts nobody) needs no consent."""

    EMAIL = "email"
    SMS = "sms"
    NONE = "none"


class InterestStatus(StrEnum):
    """`interest_memberships.status` and segments.yaml's `status:` (SPEC sections 4, 5). A file's
    opt column keeps its own words ("Subscribe", "opt-out", ...; `normalize.opt_status`)."""

    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class InterestGroupKind(StrEnum):
    """`interest_groups.kind`: the group of an interest whose members have that status."""

    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"


GROUP_OF_STATUS = {
    InterestStatus.OPTED_IN: InterestGroupKind.OPT_IN,
    InterestStatus.OPTED_OUT: InterestGroupKind.OPT_OUT,
}


def sql_list(values: Iterable[StrEnum]) -> str:
    """`('a', 'b')`: members as a SQL IN list (enum values never hold a quote)."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"
