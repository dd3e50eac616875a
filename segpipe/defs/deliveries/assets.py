"""Deliveries: each destination's latest export files, uploaded to its SFTP server."""

from datetime import UTC, datetime

import dagster as dg

from segpipe.defs.common import OWNERS, WAREHOUSE_POOL
from segpipe.defs.deliveries.partitions import deliveries_partitions, delivering
from segpipe.defs.exports.assets import DESTINATIONS_FAILED
from segpipe.defs.resources import DataDirResource, Warehouse
from segpipe.exports.deliver import DeliveryResult, deliver_destination
from segpipe.pipeline import progress

# Starts the Failure of a run in which some destination's files could not be delivered; its
# metadata `destinations_failed` maps each such destination to the (masked) reason.
DELIVERY_FAILED_PREFIX = "Delivery failed: "


def _spec() -> dg.AssetSpec:
    # Built in a function: the defs loader would take a module-level spec for an asset of its own.
    return dg.AssetSpec(
        "deliveries",
        description=(
            "A destination's export files on its SFTP server: uploaded under a temporary name "
            "and renamed, recorded per file in the `deliveries` table."
        ),
        # Every destination's delivery follows all of its segments' exports.
        deps=[dg.AssetDep("segment_export", partition_mapping=dg.AllPartitionMapping())],
        group_name="deliveries",
        owners=OWNERS,
        kinds={"sftp", "duckdb"},
        partitions_def=deliveries_partitions,
        skippable=True,
    )


@dg.multi_asset(
    name="deliver_exports",
    specs=[_spec()],
    partitions_def=deliveries_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
    pool=WAREHOUSE_POOL,
)
def deliver_exports(
    context: dg.AssetExecutionContext, data_dir: DataDirResource, warehouse: Warehouse
):
    """Uploads what each destination's latest sync wrote and its server does not hold yet."""
    data = data_dir.paths
    requested = set(context.partition_keys)
    at = datetime.now(UTC).replace(tzinfo=None)
    failed: dict[str, str] = {}
    with warehouse.get_connection() as con:
        for destination in [d for d in delivering(data) if d.name in requested]:
            result = deliver_destination(con, data, destination, at=at, run_id=context.run.run_id)
            line = _line(result)
            progress.info(line)
            if result.failed:
                context.log.error(line)
                failed[destination.name] = result.error or "failed"
                continue
            context.log.info(line)
            context.log_event(
                dg.AssetMaterialization(
                    "deliveries", partition=destination.name, metadata=_metadata(result)
                )
            )
    if failed:
        raise dg.Failure(
            description=DELIVERY_FAILED_PREFIX
            + "; ".join(f"{name}: {reason}" for name, reason in failed.items()),
            metadata={DESTINATIONS_FAILED: dg.MetadataValue.json(failed)},
            allow_retries=False,  # the step already retried with backoff; the next run will
        )
    yield from ()


def _line(result: DeliveryResult) -> str:
    line = (
        f"delivered {result.destination} to {result.address}: {len(result.delivered)} file(s) "
        f"sent, {len(result.unchanged) + len(result.already_on_server)} already there"
    )
    if result.failed:
        line += f", {len(result.failed)} FAILED after {result.attempts} attempt(s): {result.error}"
    return line


def _metadata(result: DeliveryResult) -> dict:
    metadata = {
        key: dg.MetadataValue.int(value) if isinstance(value, int) else value
        for key, value in result.metadata().items()
    }
    metadata["files"] = dg.MetadataValue.json([f.remote for f in result.delivered])
    return metadata
