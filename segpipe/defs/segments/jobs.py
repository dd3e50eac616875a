"""Refreshing what hangs off the warehouse: segments now, exports after them."""

import dagster as dg

from segpipe.defs.common import SERIAL_TAG

refresh_segments_job = dg.define_asset_job(
    "refresh_segments_job",
    # The source asset is named as well: the job observes segments.yaml (a new data version when
    # the file changed) before it recomputes the segments that depend on it.
    selection=dg.AssetSelection.groups("segments")
    | dg.AssetSelection.assets("segment_definitions"),
    tags=SERIAL_TAG,
    description="Recompute every segment's members and sizes.",
)
