"""Watch the inbox: every new file becomes an upload partition, and each batch a run."""

import logging

import dagster as dg

from segpipe.defs.instance import ensure_warehouse_pool
from segpipe.defs.recovery import fail_dead_runs
from segpipe.defs.resources import DataDirResource
from segpipe.defs.segments.jobs import refresh_segments_job
from segpipe.defs.uploads.jobs import process_upload_job, range_tags
from segpipe.defs.uploads.partitions import uploads_partitions
from segpipe.ingest.filenames import printable
from segpipe.ingest.masking import display_name
from segpipe.ingest.receive import archived, look_at_inbox


def unregistered_uploads(
    data_dir: DataDirResource, registered: set[str], log: logging.Logger | None = None
) -> list[str]:
    """Take the inbox into the archive, then every archived upload not yet a partition, in
    arrival order (this also recovers files archived by a tick that died before registering)."""
    look = look_at_inbox(data_dir.paths)
    for name, problem in look.refused:
        (log or logging.getLogger(__name__)).warning(
            f"refused inbox/{printable(display_name(name))}: {problem}"
        )
    return [f.upload_id for f in archived(data_dir.paths) if f.upload_id not in registered]


@dg.sensor(
    jobs=[process_upload_job, refresh_segments_job],
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Archives each new inbox file and requests the run that applies it, and the "
    "segment refresh that follows it.",
)
def receive_inbox_files(context: dg.SensorEvaluationContext, data_dir: DataDirResource):
    ensure_warehouse_pool(context.instance)
    for line in fail_dead_runs(context.instance):
        context.log.warning(line)
    registered = set(context.instance.get_dynamic_partitions(uploads_partitions.name))
    new = unregistered_uploads(data_dir, registered, context.log)
    if not new:
        return dg.SkipReason("no new files in the inbox")
    context.log.info(f"received {len(new)} file(s): {', '.join(new)}")
    # One run for the files found in one tick: it applies them in arrival order. The refresh is
    # requested with it: it waits in the queue behind the upload run (one run at a time holds the
    # warehouse, oldest first) and starts as soon as it ends, instead of a sensor tick later.
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=new[-1], job_name=process_upload_job.name, tags=range_tags(new[0], new[-1])
            ),
            dg.RunRequest(run_key=f"after-{new[-1]}", job_name=refresh_segments_job.name),
        ],
        dynamic_partitions_requests=[uploads_partitions.build_add_request(new)],
    )
