"""Syncing every destination after the segments change, as `segpipe run` does."""

import dagster as dg

from segpipe.defs.common import SEGMENTS
from segpipe.defs.exports.jobs import sync_destinations_job, sync_request
from segpipe.defs.resources import DataDirResource


@dg.asset_sensor(
    asset_key=SEGMENTS,
    job=sync_destinations_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Syncs the destinations after segments change, as `segpipe run` does.",
)
def sync_destinations_after_segments(
    context: dg.SensorEvaluationContext, asset_event, data_dir: DataDirResource
):
    return sync_request(context.instance, data_dir.paths, f"after-segments-{asset_event.run_id}")
