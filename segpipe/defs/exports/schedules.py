"""Syncing every destination once a day, whether or not files arrived."""

import dagster as dg

from segpipe.defs.exports.jobs import sync_destinations_job, sync_request
from segpipe.defs.freshness import SYNC_CRON
from segpipe.defs.resources import DataDirResource


@dg.schedule(
    cron_schedule=SYNC_CRON,
    job=sync_destinations_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Syncs every destination once a day, whether or not files arrived.",
)
def daily_destination_sync(context: dg.ScheduleEvaluationContext, data_dir: DataDirResource):
    # Every pair, changed or not: each gets its daily materialization (EXPORTS_FRESHNESS).
    return sync_request(
        context.instance,
        data_dir.paths,
        context.scheduled_execution_time.isoformat(),
        sync_all=True,
    )
