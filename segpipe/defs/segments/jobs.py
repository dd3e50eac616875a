"""Refreshing what hangs off the warehouse: segments now, exports after them."""

import dagster as dg

from segpipe.defs.uploads.jobs import SERIAL_TAG

# Rule time windows count back from this instant when a run carries it (`segpipe run --as-of`).
AS_OF_TAG = "segpipe/as_of"

refresh_segments = dg.define_asset_job(
    "refresh_segments",
    selection=dg.AssetSelection.groups("segments"),
    tags=SERIAL_TAG,
    description="Recompute every segment's members and sizes.",
)
