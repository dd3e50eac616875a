"""The run that syncs every destination, and the request that starts it (schedules.py: daily;
sensors.py: after the segments change)."""

import dagster as dg
import duckdb

from segpipe.config import DataDir
from segpipe.defs.common import SERIAL_TAG, SYNC_ALL_TAG
from segpipe.defs.exports.partitions import current_pairs, exports_partitions, register_pairs
from segpipe.defs.segments.checks import failed_blocking_checks
from segpipe.defs.uploads.jobs import range_tags

sync_destinations_job = dg.define_asset_job(
    "sync_destinations_job",
    selection=dg.AssetSelection.groups("exports"),
    partitions_def=exports_partitions,
    tags=SERIAL_TAG,
    description="Export every destination's segments with their adds and removes.",
)


def _peek_pairs(data: DataDir):
    """The configured pairs, read without taking the writer's lock; when a run holds the
    warehouse, the pairs already registered (new segments wait for the next run or tick)."""
    try:
        con = duckdb.connect(str(data.warehouse), read_only=True)
    except duckdb.Error:
        return None
    try:
        return current_pairs(con, data)
    except duckdb.Error:  # a warehouse not yet created by any run
        return None
    finally:
        con.close()


def sync_request(
    instance: dg.DagsterInstance, data: DataDir, run_key: str, *, sync_all: bool = False
):
    """The run that syncs every configured destination segment, or why there is none; with
    `sync_all`, one that writes unchanged destinations too."""
    if failed := failed_blocking_checks(instance):
        return dg.SkipReason(
            f"not syncing a broken warehouse: check {', '.join(failed)} failed on segments; "
            "a refresh that passes it lets the syncs run again"
        )
    pairs = _peek_pairs(data) if data.warehouse.exists() else None
    if pairs is None:
        known = instance.get_dynamic_partitions(exports_partitions.name)
        if not known:
            return dg.SkipReason("no destination segments to sync yet")
        tags = range_tags(known[0], known[-1])
    else:
        tags = register_pairs(instance, pairs)
        if tags is None:
            return dg.SkipReason("no destinations configured in segments.yaml")
    if sync_all:
        tags = {**tags, SYNC_ALL_TAG: "true"}
    return dg.RunRequest(run_key=run_key, tags=tags)
