"""Invariants of the warehouse, checked each time segments are refreshed.

The checks attach to `segments`, refreshed after every batch of uploads (by the
refresh_segments_after_uploads sensor in the UI, by `segpipe run`) and when segments.yaml
changes; the uploads' own checks are on `applied_upload` (segpipe/defs/uploads/checks.py).
"""

import dagster as dg
import polars as pl
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from segpipe.defs.common import SEGMENTS, WAREHOUSE_POOL
from segpipe.defs.resources import Warehouse
from segpipe.defs.segments.assets import RULE_FAILED_PREFIX
from segpipe.ingest.report import markdown_table
from segpipe.warehouse.integrity import broken_references

SIZE_PREFIX = "size: "
# The checks that guard references: when the latest of them failed, no sync runs.
BLOCKING_CHECKS = (dg.AssetCheckKey(SEGMENTS, "references_resolve"),)


@dg.asset_check(
    asset=SEGMENTS,
    pool=WAREHOUSE_POOL,
    # A sync never ships a broken warehouse: when this fails, the run stops before exports, and
    # the sync sensor and schedule skip until a refresh passes it (BLOCKING_CHECKS).
    blocking=True,
    description="Every membership names an existing person and an existing segment or interest; "
    "cons_id, member_id and email each identify one constituent. Blocks exports when it fails.",
)
def references_resolve(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        problems = broken_references(con)
    found = problems.filter(pl.col("rows") > 0)
    return dg.AssetCheckResult(
        passed=found.is_empty(),
        metadata={
            "rows_broken": int(found["rows"].sum()) if found.height else 0,
            "problems": dg.MetadataValue.md(_table(found)),
        },
    )


class SizeChangeAlert(dg.Config):
    # A segment moving more than this share of its previous size raises the warning.
    max_change: float = 0.5


@dg.asset_check(
    asset=SEGMENTS,
    description="Warns when a segment's size moved by more than a share (default 50%) of its "
    "size at the previous refresh: a feed that silently dropped or doubled its audience.",
)
def segment_sizes_are_steady(
    context: dg.AssetCheckExecutionContext, config: SizeChangeAlert
) -> dg.AssetCheckResult:
    current, previous = _last_two_sizes(context)
    moves = _size_moves(previous, current, config.max_change)
    return dg.AssetCheckResult(
        passed=moves.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "max_change": config.max_change,
            "segments_moved": moves.height,
            "moves": dg.MetadataValue.md(_table(moves)),
        },
    )


def _last_two_sizes(context) -> tuple[dict[str, int], dict[str, int]]:
    """Segment sizes of this run's materialization and of the one before it (empty if none)."""
    records = context.instance.fetch_materializations(SEGMENTS, limit=2).records
    sizes = [_sizes(r.asset_materialization.metadata) for r in records]
    if records and records[0].run_id != context.run.run_id:
        sizes.insert(0, {})  # this run did not materialize segments: nothing new to compare
    sizes += [{}, {}]
    return sizes[0], sizes[1]


def _sizes(metadata) -> dict[str, int]:
    return {
        key.removeprefix(SIZE_PREFIX): int(value.value)
        for key, value in metadata.items()
        if key.startswith(SIZE_PREFIX)
    }


def _size_moves(before: dict[str, int], now: dict[str, int], max_change: float) -> pl.DataFrame:
    """Segments present both times whose size moved by more than `max_change` of the old size
    (a segment that was empty counts as size 1, so a jump from 0 to 5 is a move)."""
    both = sorted(before.keys() & now.keys())
    sizes = pl.DataFrame(
        {"segment": both, "before": [before[n] for n in both], "now": [now[n] for n in both]},
        schema={"segment": pl.String, "before": pl.Int64, "now": pl.Int64},
    )
    change = (pl.col("now") - pl.col("before")).abs() / pl.max_horizontal(pl.col("before"), 1)
    return sizes.with_columns(change=change.round(3)).filter(pl.col("change") > max_change)


def _table(rows: pl.DataFrame) -> str:
    return markdown_table(rows)


@dg.asset_check(
    asset=SEGMENTS,
    description="Fails (ERROR) when a data-driven segment's rule could not be evaluated this "
    "refresh (unknown attribute, text compared as a number or date, ...): that segment kept its "
    "members, the others refreshed. `segpipe run` exits non-zero on it.",
)
def segment_rules_evaluate(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    records = context.instance.fetch_materializations(SEGMENTS, limit=1).records
    metadata = records[0].asset_materialization.metadata if records else {}
    if records and records[0].run_id != context.run.run_id:
        metadata = {}  # this run did not refresh segments: nothing was evaluated
    failed = {
        key.removeprefix(RULE_FAILED_PREFIX): str(value.value)
        for key, value in metadata.items()
        if key.startswith(RULE_FAILED_PREFIX)
    }
    rows = pl.DataFrame(
        {"segment": list(failed), "problem": list(failed.values())},
        schema={"segment": pl.String, "problem": pl.String},
    )
    return dg.AssetCheckResult(
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(failed.values()) or None,
        metadata={"failed_rules": len(failed), "rules": dg.MetadataValue.md(_table(rows))},
    )


def failed_blocking_checks(instance: dg.DagsterInstance) -> list[str]:
    """The BLOCKING_CHECKS whose latest finished evaluation failed (names; empty when none)."""
    failed = []
    for key in BLOCKING_CHECKS:
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=5)
        finished = [r for r in history if r.status != AssetCheckExecutionRecordStatus.PLANNED]
        if finished and finished[0].status == AssetCheckExecutionRecordStatus.FAILED:
            failed.append(key.name)
    return failed
