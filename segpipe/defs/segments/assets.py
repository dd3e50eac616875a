"""Segments: every list, interest group and rule-based audience, with its current members."""

import hashlib
from datetime import UTC, datetime

import dagster as dg

from segpipe.defs.common import AS_OF_TAG, OWNERS, WAREHOUSE_POOL
from segpipe.defs.freshness import SEGMENTS_FRESHNESS
from segpipe.defs.metadata import table_metadata, table_schema
from segpipe.defs.recovery import mark_run_process
from segpipe.defs.resources import DataDirResource, Warehouse
from segpipe.segments.refresh import refresh_segments
from segpipe.segments.rules import SegmentDefinitionError
from segpipe.warehouse.segments import segment_sizes

RULE_FAILED_PREFIX = "rule failed: "


@dg.observable_source_asset(
    group_name="segments",
    owners=OWNERS,
    kinds={"yaml"},
    # Under `dagster dev` the file is looked at every five minutes; `segments` (eager) follows
    # a new data version. `segpipe run` observes it in refresh_segments_job.
    automation_condition=dg.AutomationCondition.on_cron("*/5 * * * *"),
)
def segment_definitions(data_dir: DataDirResource) -> dg.ObserveResult:
    """The data-driven segment rules in segments.yaml; a new version when the file changes."""
    path = data_dir.paths.segments_yaml
    content = path.read_bytes() if path.exists() else b""
    version = hashlib.sha256(content).hexdigest() if path.exists() else "missing"
    return dg.ObserveResult(
        data_version=dg.DataVersion(version),
        metadata={"path": str(path), "exists": path.exists(), "bytes": len(content)},
    )


def _as_of(context: dg.AssetExecutionContext) -> datetime:
    """Rule windows count back from `--as-of` when the run carries it, else from now (UTC)."""
    tagged = context.run.tags.get(AS_OF_TAG)
    moment = datetime.fromisoformat(tagged) if tagged else datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


@dg.asset(
    deps=["applied_upload", segment_definitions],
    pool=WAREHOUSE_POOL,
    group_name="segments",
    owners=OWNERS,
    kinds={"duckdb"},
    freshness_policy=SEGMENTS_FRESHNESS,
    metadata={"dagster/column_schema": table_schema("segment_members")},
    # Uploads are followed by the refresh_segments_after_uploads sensor; eager() here follows
    # only a new version of segments.yaml.
    automation_condition=dg.AutomationCondition.eager().ignore(
        dg.AssetSelection.assets("applied_upload")
    ),
)
def segments(
    context: dg.AssetExecutionContext, data_dir: DataDirResource, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Every segment and its current size; data-driven segments recomputed from their rules."""
    mark_run_process(context)
    as_of = _as_of(context)
    now = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.get_connection() as con:
        try:
            refresh = refresh_segments(
                con, data_dir.paths.segments_yaml, as_of=as_of, run_id=context.run.run_id, at=now
            )
        except SegmentDefinitionError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        sizes = segment_sizes(con)
        catalog = con.execute("SELECT current_database()").fetchone()[0]
    members_total = int(sizes["members"].sum()) if sizes.height else 0
    return dg.MaterializeResult(
        metadata={
            # Dagster's standard keys: the rows of segment_members are the members in total.
            "dagster/row_count": members_total,
            **table_metadata("segment_members", catalog),
            "segments": sizes.height,
            "members_total": members_total,
            "as_of": as_of.isoformat(),
            "data_driven_segments": len(refresh.sizes),
            "entered": refresh.entered,
            "left": refresh.left,
            "deleted_segments": ", ".join(refresh.deleted) or "none",
            # Read by the segment_rules_evaluate check; the segment kept its members.
            **{f"{RULE_FAILED_PREFIX}{name}": problem for name, problem in refresh.failed.items()},
            **{f"rule note: {name}": "; ".join(notes) for name, notes in refresh.notes.items()},
            **{
                # the label: a subscriber segment's domain keeps two brands' "VIP" apart
                f"size: {label}": dg.MetadataValue.int(n)
                for label, n in sizes.select("label", "members").iter_rows()
            },
        }
    )
