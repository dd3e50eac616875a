"""Warnings from the daemon: after a run fails, and after a run whose checks or exports speak.

`segpipe run` sends the warnings of its own runs (tagged WARNED_BY_TAG) without a daemon; the
sensors skip those, so nobody hears twice.
"""

import dagster as dg

from segpipe.defs.common import WARNED_BY_TAG
from segpipe.defs.resources import DataDirResource
from segpipe.defs.warnings.send import send_run_warnings

# The daemon evaluates sensors one after another: warnings a minute late cost the upload and
# refresh sensors less than a tick every 30 s would.
WARN_INTERVAL_SECONDS = 60


def _warn(context: dg.RunStatusSensorContext, data_dir: DataDirResource) -> dg.SkipReason | None:
    run = context.dagster_run
    if WARNED_BY_TAG in run.tags:
        return dg.SkipReason(f"run {run.run_id} was warned about by {run.tags[WARNED_BY_TAG]}")
    sent, problems = send_run_warnings(data_dir.paths, context.instance, [run])
    for problem in problems:
        context.log.warning(problem)
    return dg.SkipReason(f"{sent} warning message(s) sent for run {run.run_id}")


@dg.run_failure_sensor(
    minimum_interval_seconds=WARN_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Emails and calls the webhook of segments.yaml's `warnings:` when a run fails: "
    "a failed sync or delivery, any failed step.",
)
def warn_on_run_failure(context: dg.RunFailureSensorContext, data_dir: DataDirResource):
    return _warn(context, data_dir)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    minimum_interval_seconds=WARN_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Warns when a file was rejected or held (its raw_upload `status`), when a "
    "segment's size moved sharply (the size check's WARN), and tells who asked "
    "(`export_ready: true`) that an export is ready.",
)
def warn_on_run_success(context: dg.RunStatusSensorContext, data_dir: DataDirResource):
    return _warn(context, data_dir)
