"""Refresh segments on a clock, so rule time windows move on days without an upload."""

import os

import dagster as dg

from segpipe.defs.common import AS_OF_TAG
from segpipe.defs.segments.jobs import refresh_segments_job

# The cron of the refresh, per deployment (UTC). The default runs half an hour before the
# 06:00 UTC daily_destination_sync, so the sync ships lists evaluated that morning.
REFRESH_CRON_ENV = "SEGPIPE_SEGMENT_REFRESH_CRON"
DEFAULT_REFRESH_CRON = "30 5 * * *"


def refresh_cron() -> str:
    """The refresh cron: $SEGPIPE_SEGMENT_REFRESH_CRON, else 05:30 UTC daily."""
    return os.environ.get(REFRESH_CRON_ENV, "").strip() or DEFAULT_REFRESH_CRON


@dg.schedule(
    cron_schedule=refresh_cron(),
    job=refresh_segments_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refreshes every segment daily before the 06:00 sync (cron: "
    f"${REFRESH_CRON_ENV}), so a `within_days` rule lets people leave on days without uploads.",
)
def daily_segment_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    # Rule windows count back from the tick, not from whenever the run leaves the queue: a tick
    # that waited behind a long upload still evaluates the morning it was meant for.
    tick = context.scheduled_execution_time.isoformat()
    return dg.RunRequest(run_key=tick, tags={AS_OF_TAG: tick})
