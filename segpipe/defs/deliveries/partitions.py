"""Each destination with `deliver:` is one partition of `deliveries`: its own history in the UI
of what was uploaded where. Dynamic, as destinations come from segments.yaml, not the code."""

import dagster as dg

from segpipe.config import DataDir
from segpipe.defs.uploads.jobs import range_tags
from segpipe.exports.destinations import Destination, load_destinations

deliveries_partitions = dg.DynamicPartitionsDefinition(name="deliveries")


def delivering(data: DataDir) -> list[Destination]:
    """The destinations of segments.yaml that carry `deliver:`; DestinationError when wrong."""
    return [d for d in load_destinations(data.segments_yaml) if d.deliver is not None]


def register_destinations(instance: dg.DagsterInstance, names: list[str]) -> dict | None:
    """Add new destinations as partitions; the tags of a run over all of `names`, or None."""
    known = instance.get_dynamic_partitions(deliveries_partitions.name)
    if new := [n for n in names if n not in set(known)]:
        instance.add_dynamic_partitions(deliveries_partitions.name, new)
    ordered = [k for k in instance.get_dynamic_partitions(deliveries_partitions.name) if k in names]
    return range_tags(ordered[0], ordered[-1]) if ordered else None
