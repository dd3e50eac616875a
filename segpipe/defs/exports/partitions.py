"""Each destination's copy of each segment is one partition of `segment_export`.

Why dynamic partitions keyed `<destination>/<audience>`: the pairs are not known when the code
location loads (segments appear with uploads, and a `"*"` destination takes every one of them),
and a partition per pair gives each its own materialization history in the UI: its members,
adds and removes over time. Static partitions would freeze the segment list at load time; one
asset per destination would hide the per-segment history. As with uploads, a run covers a range
of partitions in one step (single-run backfill), so one DuckDB statement writes every segment of
a destination at once instead of a step per segment.
"""

import dagster as dg
import duckdb

from segpipe.config import DataDir
from segpipe.defs.uploads.jobs import range_tags
from segpipe.exports.destinations import Pair, configured_pairs, load_destinations

exports_partitions = dg.DynamicPartitionsDefinition(name="exports")


def current_pairs(
    con: duckdb.DuckDBPyConnection, data: DataDir, warn=None, missing=None
) -> list[Pair]:
    """Every configured destination and segment, and the retired ones whose removal a mirror
    destination is still owed (a partition that disappears is synced once more, empty: see
    exports.destinations.retired_pairs); DestinationError when segments.yaml is wrong.
    `warn(message)` hears of segments left out for their names, `missing(MissingSegments)` of
    names no segment has."""
    return configured_pairs(con, load_destinations(data.segments_yaml), warn, missing)


def register_pairs(instance: dg.DagsterInstance, pairs: list[Pair]) -> dict[str, str] | None:
    """Add the new pairs as partitions; the tags of a run over all of them (pairs no longer
    configured inside the range are skipped by the step), or None when there is nothing."""
    known = instance.get_dynamic_partitions(exports_partitions.name)
    new = [p.partition_key for p in pairs if p.partition_key not in set(known)]
    if new:
        instance.add_dynamic_partitions(exports_partitions.name, list(dict.fromkeys(new)))
    wanted = {p.partition_key for p in pairs}
    ordered = [k for k in instance.get_dynamic_partitions(exports_partitions.name) if k in wanted]
    return range_tags(ordered[0], ordered[-1]) if ordered else None
