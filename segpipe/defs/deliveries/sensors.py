"""Delivering after every sync the daemon runs (segpipe run delivers by itself)."""

import dagster as dg

from segpipe.defs.common import SEGMENT_EXPORT
from segpipe.defs.deliveries.jobs import deliver_exports_job
from segpipe.defs.deliveries.partitions import delivering, register_destinations
from segpipe.defs.resources import DataDirResource
from segpipe.exports.destinations import DestinationError


@dg.asset_sensor(
    asset_key=SEGMENT_EXPORT,
    job=deliver_exports_job,
    minimum_interval_seconds=30,  # a delivery waits for its sync anyway; fewer daemon ticks
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Delivers the destinations' files to their SFTP servers after a sync.",
)
def deliver_after_sync(context: dg.SensorEvaluationContext, asset_event, data_dir: DataDirResource):
    try:
        names = [d.name for d in delivering(data_dir.paths)]
    except DestinationError as error:
        return dg.SkipReason(f"segments.yaml: {error}")
    tags = register_destinations(context.instance, names)
    if tags is None:
        return dg.SkipReason("no destination has `deliver:` in segments.yaml")
    return dg.RunRequest(run_key=f"after-sync-{asset_event.run_id}", tags=tags)
