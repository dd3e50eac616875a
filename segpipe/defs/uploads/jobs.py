"""The run that takes one upload from raw file to applied warehouse change."""

import dagster as dg

from segpipe.defs.uploads.partitions import uploads_partitions

# Runs carrying this tag leave the run queue one at a time (segpipe/dagster.yaml).
SERIAL_TAG = {"segpipe/warehouse": "write"}

process_upload = dg.define_asset_job(
    "process_upload",
    selection=dg.AssetSelection.groups("uploads"),
    partitions_def=uploads_partitions,
    tags=SERIAL_TAG,
    description="Archive, validate, resolve and apply one received file.",
)
