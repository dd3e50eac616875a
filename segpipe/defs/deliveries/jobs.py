"""The run that delivers every destination with `deliver:`: after `segpipe run`'s sync, and
after each sync in `dagster dev` (sensors.py)."""

import dagster as dg

from segpipe.defs.common import SERIAL_TAG
from segpipe.defs.deliveries.partitions import deliveries_partitions

deliver_exports_job = dg.define_asset_job(
    "deliver_exports_job",
    selection=dg.AssetSelection.assets("deliveries"),
    partitions_def=deliveries_partitions,
    tags=SERIAL_TAG,
    description="Upload each destination's latest export files to its SFTP server.",
)
