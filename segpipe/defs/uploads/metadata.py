"""Dagster's standard metadata on each upload stage's materialization."""

import importlib
from functools import cache

import dagster as dg

from segpipe.defs.metadata import table_metadata, validated_schema
from segpipe.ingest.filenames import UploadKind
from segpipe.kinds import RULES
from segpipe.pipeline import Stage

# The public table each kind's rows land in (SPEC section 4); an Attentive delivery and a manual
# list both change segment members.
APPLIED_TABLES = {
    UploadKind.CONSTITUENT: "constituents",
    UploadKind.SEGMENTATION: "interest_memberships",
    UploadKind.INTEREST_XREF: "interest_xref",
    UploadKind.EVENTS: "events",
    UploadKind.MANUAL_SEGMENT: "segment_members",
    UploadKind.SUBSCRIBER_SEGMENT: "segment_members",
    UploadKind.SUPPRESSION: "suppressions",
}


@cache
def validated_columns(kind: UploadKind) -> dg.TableSchema | None:
    """The kind's validated columns, from the pandera SCHEMA of the module holding its rules."""
    schema = getattr(importlib.import_module(RULES[kind].validate.__module__), "SCHEMA", None)
    return validated_schema(schema) if schema is not None else None


def standard_metadata(stage: Stage, values, kind: str | None, catalog: str) -> dict:
    """`dagster/partition_row_count` (the file's rows in) on every stage that read the file;
    the kind's pandera columns on validated_upload; table name and columns on applied_upload."""
    metadata: dict = {}
    if isinstance(values.get("rows_in"), int):
        metadata["dagster/partition_row_count"] = values["rows_in"]
    known = kind in set(UploadKind) and UploadKind(kind) in RULES
    if stage == Stage.VALIDATED and known and (columns := validated_columns(UploadKind(kind))):
        metadata["dagster/column_schema"] = columns
    if stage == Stage.APPLIED and known and UploadKind(kind) in APPLIED_TABLES:
        metadata.update(table_metadata(APPLIED_TABLES[UploadKind(kind)], catalog))
    return metadata
