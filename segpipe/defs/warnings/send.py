"""Sending a run's notices to the recipients segments.yaml names."""

from __future__ import annotations

import dagster as dg

from segpipe.config import DataDir
from segpipe.defs.warnings.runs import run_notices
from segpipe.exports.destinations import DestinationError, load_destinations
from segpipe.notify.notices import Notice
from segpipe.notify.send import send_notices
from segpipe.notify.settings import WarningsError, load_global_warnings


def _recipients(data: DataDir):
    """(global settings, per destination settings, SMTP), or the problem reading them."""
    try:
        everyone = load_global_warnings(data.segments_yaml)
    except WarningsError as error:
        return f"{data.segments_yaml.name}: {error}"
    try:
        per_destination = {
            d.name: d.warnings for d in load_destinations(data.segments_yaml) if d.warnings
        }
    except DestinationError:
        per_destination = {}  # a broken destination list: the global recipients still hear
    return everyone.settings, per_destination, everyone.smtp


def send_warnings(data: DataDir, notices: list[Notice]) -> tuple[int, list[str]]:
    """Send `notices` to the global recipients and their destination's; (sent, problems)."""
    if not notices:
        return 0, []
    found = _recipients(data)
    if isinstance(found, str):
        return 0, [found]
    return send_notices(notices, *found)


def send_run_warnings(
    data: DataDir, instance: dg.DagsterInstance, runs: list[dg.DagsterRun]
) -> tuple[int, list[str]]:
    """The notices of `runs`, sent; the event logs are not read when nobody is to be told."""
    found = _recipients(data)
    if isinstance(found, str):
        return 0, [found]
    everyone, per_destination, _ = found
    if not everyone.anyone and not any(s.anyone for s in per_destination.values()):
        return 0, []
    return send_notices([n for run in runs for n in run_notices(instance, run)], *found)
