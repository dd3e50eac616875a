"""Exports: each destination's copy of each segment, kept in step with adds and removes."""

from datetime import UTC, datetime

import dagster as dg

from segpipe.defs.common import OWNERS, SYNC_ALL_TAG, WAREHOUSE_POOL
from segpipe.defs.exports.partitions import current_pairs, exports_partitions
from segpipe.defs.freshness import EXPORTS_FRESHNESS
from segpipe.defs.recovery import mark_run_process
from segpipe.defs.resources import DataDirResource, Warehouse
from segpipe.defs.segments.checks import failed_blocking_checks
from segpipe.exports.deliver import undelivered_diffs
from segpipe.exports.destinations import MissingSegments
from segpipe.exports.sync import sync_destination
from segpipe.ingest.normalize import mask_text
from segpipe.pipeline import progress
from segpipe.warehouse.guard import ALLOW_TAG, RemovalHeld, removal_limit

DESTINATIONS_FAILED = "destinations_failed"
# The failure metadata key of a sync the removal guard held: its messages, one per destination.
DESTINATIONS_HELD = "destinations_held"
# The failure metadata key of segments destinations name that do not exist: {destination:
# message}; its other segments and the other destinations synced (exit 2, as a held sync).
SEGMENTS_MISSING = "segments_missing"


def _spec() -> dg.AssetSpec:
    # Built in a function: the defs loader would take a module-level spec for an asset of its own.
    return dg.AssetSpec(
        "segment_export",
        description=(
            "One destination's copy of one segment: the full list, and who entered and left "
            "since the last successful sync."
        ),
        deps=["segments"],
        group_name="exports",
        owners=OWNERS,
        kinds={"duckdb", "csv"},
        partitions_def=exports_partitions,
        skippable=True,
        freshness_policy=EXPORTS_FRESHNESS,
    )


@dg.multi_asset(
    name="sync_exports",
    specs=[_spec()],
    partitions_def=exports_partitions,
    # One step for the whole range: each destination's segments are written by one statement.
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
    pool=WAREHOUSE_POOL,
)
def sync_exports(
    context: dg.AssetExecutionContext, data_dir: DataDirResource, warehouse: Warehouse
):
    """Writes members, adds and removes for every destination and segment in the run."""
    mark_run_process(context)
    # Checked again when the run starts: a sync requested while the refresh's checks were still
    # running queues behind that refresh, and must not ship what its checks then failed.
    if failed := failed_blocking_checks(context.instance):
        raise dg.Failure(
            description=f"not syncing a broken warehouse: check {', '.join(failed)} failed on "
            "segments",
            allow_retries=False,
        )
    data = data_dir.paths
    requested = set(context.partition_keys)
    at = datetime.now(UTC).replace(tzinfo=None)
    failed, reasons, held, missing = [], {}, [], []
    forced = context.run.tags.get(ALLOW_TAG) == "true"
    skip_unchanged = context.run.tags.get(SYNC_ALL_TAG) != "true"
    limit = None if forced else removal_limit(data.segments_yaml)
    with warehouse.get_connection() as con:
        configured = current_pairs(con, data, _warn(context), missing.append)
        pairs = [p for p in configured if p.partition_key in requested]
        for gone in missing:
            context.log.warning(str(gone))
        if stale := requested - {p.partition_key for p in pairs}:
            context.log.info(f"{len(stale)} pair(s) no longer configured, not synced")
        destinations = list(dict.fromkeys(p.destination for p in pairs))
        for destination in destinations:
            mine = [p for p in pairs if p.destination == destination]
            if waiting := undelivered_diffs(con, destination):
                line = (
                    f"held {destination.name}: {waiting} file(s) of its last sync not delivered "
                    "yet; they are delivered first, this sync follows on the next run"
                )
                progress.info(line)
                context.log.warning(line)
                continue
            try:
                synced = sync_destination(
                    con,
                    data,
                    destination,
                    mine,
                    at=at,
                    run_id=context.run.run_id,
                    removal_limit=limit,
                    skip_unchanged=skip_unchanged,
                )
            except RemovalHeld as error:
                context.log.warning(str(error))
                held.append(str(error))
                continue
            except Exception as error:  # one destination failing leaves the others to sync
                reason = mask_text(str(error) or type(error).__name__)
                context.log.error(f"destination {destination.name}: sync failed: {reason}")
                failed.append(destination.name)
                reasons[destination.name] = reason
                continue
            if synced.unchanged:
                # One line, no materialization: nothing was written (issue 18).
                line = (
                    f"unchanged {destination.name}: {len(mine)} segment(s) as last synced, "
                    "no files written"
                )
                progress.info(line)
                context.log.info(line)
                continue
            for pair in synced.pairs:
                context.log_event(
                    dg.AssetMaterialization(
                        "segment_export",
                        partition=pair.pair.partition_key,
                        metadata=_metadata(pair.metadata(), synced.delivery_files),
                    )
                )
            line = (
                f"exported {destination.name}: {len(synced.pairs)} segment(s), "
                f"{sum(p.adds for p in synced.pairs)} add(s), "
                f"{sum(p.removes for p in synced.pairs)} remove(s)"
            )
            if synced.skipped_segments:
                line += f"; {len(synced.skipped_segments)} segment name(s) attentive cannot carry"
            progress.info(line)
            context.log.info(line)
    _fail(reasons, held, missing)
    yield from ()


def _fail(reasons: dict[str, str], held: list[str], missing: list[MissingSegments]) -> None:
    """One step failure carrying every problem of the sync, each under its metadata key, read
    by `segpipe run` (its lines, its exit code) and by the warnings (each destination and its
    reason); the others were synced all the same."""
    metadata = {}
    if reasons:
        metadata[DESTINATIONS_FAILED] = dg.MetadataValue.json(reasons)
    if held:
        metadata[DESTINATIONS_HELD] = dg.MetadataValue.json(held)
    if missing:
        by_destination = {gone.destination: str(gone) for gone in missing}
        metadata[SEGMENTS_MISSING] = dg.MetadataValue.json(by_destination)
    if not metadata:
        return
    raise dg.Failure(
        description=f"sync failed for destination(s): {', '.join(reasons)}"
        if reasons
        else "; ".join([*held, *(str(gone) for gone in missing)]),
        metadata=metadata,
        # Only a failing destination may do better on a retry: held or missing ones wait for
        # a person.
        allow_retries=bool(reasons),
    )


def _warn(context: dg.AssetExecutionContext):
    def warn(message: str) -> None:
        progress.warning(f"warning: {message}")
        context.log.warning(message)

    return warn


def _metadata(values: dict, delivery_files: list[str]) -> dict:
    metadata = {
        key: dg.MetadataValue.int(value) if isinstance(value, int) else value
        for key, value in values.items()
    }
    metadata["path"] = dg.MetadataValue.path(values["path"])
    # Dagster's standard row count: the rows of this destination's full list.
    metadata["dagster/row_count"] = dg.MetadataValue.int(values["members"])
    if delivery_files:
        metadata["delivery_files"] = dg.MetadataValue.json(delivery_files)
    return metadata
