"""Keep segments current: the automation sensor that refreshes them after uploads apply."""

import dagster as dg

from segpipe.defs.uploads.jobs import SERIAL_TAG

# Dagster's implicit default automation sensor starts STOPPED; segments would then never refresh
# on their own in the UI. This one starts running, and its runs queue with the upload runs.
refresh_segments_after_uploads = dg.AutomationConditionSensorDefinition(
    "refresh_segments_after_uploads",
    target=dg.AssetSelection.groups("segments"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    run_tags=SERIAL_TAG,
    description="Refreshes segments (and runs their checks) once newly applied uploads change "
    "the warehouse.",
)
