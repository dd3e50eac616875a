"""Keep segments current: refresh them after uploads apply, and when segments.yaml changes."""

import dagster as dg

from segpipe.defs.common import APPLIED_UPLOAD, SEGMENTS, SERIAL_TAG
from segpipe.defs.segments.jobs import refresh_segments_job


def _latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey) -> int | None:
    """The event-log id of the asset's latest materialization (any partition), if any."""
    records = instance.fetch_materializations(key, limit=1).records
    return records[0].storage_id if records else None


def _refresh_waiting(instance: dg.DagsterInstance) -> bool:
    """A refresh run not finished yet: it starts after any upload that applied before it (runs
    take the warehouse one at a time, in queue order)."""
    waiting = dg.RunsFilter(
        job_name=refresh_segments_job.name,
        statuses=[
            dg.DagsterRunStatus.QUEUED,
            dg.DagsterRunStatus.NOT_STARTED,
            dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED,
        ],
    )
    return bool(instance.get_run_records(waiting, limit=1))


@dg.sensor(
    job=refresh_segments_job,
    # The sensor daemon's own loop (5 s): a refresh follows an applied upload as soon as the
    # daemon can see it (issue 18: applied and refreshed within 15 s of landing).
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refreshes segments (and runs their checks) once newly applied uploads change "
    "the warehouse.",
)
def refresh_segments_after_uploads(context: dg.SensorEvaluationContext):
    # Compares event-log ids rather than using an eager automation condition: when a refresh
    # finished and another batch applied between two ticks, eager() saw both at once, let the
    # refresh win, and no refresh followed that batch.
    applied = _latest_materialization(context.instance, APPLIED_UPLOAD)
    if applied is None or applied <= int(context.cursor or 0):
        return dg.SkipReason("no upload applied since the last refresh this sensor requested")
    if _refresh_waiting(context.instance):
        # Requested with the upload run (receive_inbox_files), behind it in the queue: it will
        # see this upload. The cursor stays, so a refresh canceled meanwhile is requested again.
        return dg.SkipReason("a segment refresh is already queued or running")
    context.update_cursor(str(applied))
    refreshed = _latest_materialization(context.instance, SEGMENTS)
    # One writer at a time: a refresh recorded after an upload ran after it, and saw it.
    if refreshed is not None and refreshed > applied:
        return dg.SkipReason("segments were already refreshed after the latest upload applied")
    return dg.RunRequest(run_key=f"after-applied-upload-{applied}")


# Dagster's implicit default automation sensor starts STOPPED; segments.yaml would then never be
# looked at on its own in the UI. This one starts running, and its runs queue with the others.
observe_segment_definitions = dg.AutomationConditionSensorDefinition(
    "observe_segment_definitions",
    target=dg.AssetSelection.groups("segments"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags=SERIAL_TAG,
    description="Looks at segments.yaml every five minutes and refreshes segments when it changed.",
)
