"""Refreshing what hangs off the warehouse: segments now, exports after them."""

import dagster as dg

from segpipe.defs.uploads.jobs import SERIAL_TAG

# Rule time windows count back from this instant when a run carries it (`segpipe run --as-of`).
AS_OF_TAG = "segpipe/as_of"

refresh_segments = dg.define_asset_job(
    "refresh_segments",
    # The source asset is named as well: the job observes segments.yaml (a new data version when
    # the file changed) before it recomputes the segments that depend on it.
    selection=dg.AssetSelection.groups("segments")
    | dg.AssetSelection.assets("segment_definitions"),
    tags=SERIAL_TAG,
    description="Recompute every segment's members and sizes.",
)
