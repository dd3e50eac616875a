"""The run that takes received files from raw bytes to applied warehouse changes."""

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from segpipe.defs.common import SERIAL_TAG
from segpipe.defs.uploads.ops import undo_upload_op
from segpipe.defs.uploads.partitions import uploads_partitions

process_upload_job = dg.define_asset_job(
    "process_upload_job",
    selection=dg.AssetSelection.groups("uploads"),
    partitions_def=uploads_partitions,
    tags=SERIAL_TAG,
    description="Validate, resolve and apply received files, in arrival order.",
)


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags that make one run cover the upload partitions from `first` to `last`."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


@dg.job(tags=SERIAL_TAG, description="Undo one applied upload (run config: its upload_id).")
def undo_upload_job():
    undo_upload_op()
