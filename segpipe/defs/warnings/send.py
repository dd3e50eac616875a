"""Sending a run's notices to the recipients segments.yaml names."""

from __future__ import annotations

import dagster as dg

from segpipe.config import DataDir
from segpipe.defs.warnings.runs import run_notices
from segpipe.exports.destinations import DestinationError, load_destinations
from segpipe.notify.notices import Notice
from segpipe.notify.send import send_notices
from segpipe.notify.settings import WarningsError, load_global_warnings


def send_warnings(data: DataDir, notices: list[Notice]) -> tuple[int, list[str]]:
    """Send `notices` to the global recipients and their destination's; (sent, problems)."""
    if not notices:
        return 0, []
    try:
        everyone = load_global_warnings(data.segments_yaml)
    except WarningsError as error:
        return 0, [f"{data.segments_yaml.name}: {error}"]
    try:
        per_destination = {
            d.name: d.warnings for d in load_destinations(data.segments_yaml) if d.warnings
        }
    except DestinationError:
        per_destination = {}  # a broken destination list: the global recipients still hear
    return send_notices(notices, everyone.settings, per_destination, everyone.smtp)


def send_run_warnings(
    data: DataDir, instance: dg.DagsterInstance, runs: list[dg.DagsterRun]
) -> tuple[int, list[str]]:
    return send_warnings(data, [n for run in runs for n in run_notices(instance, run)])
