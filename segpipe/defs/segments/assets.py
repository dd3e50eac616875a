"""Segments: every list, interest group and rule-based audience, with its current members."""

import dagster as dg

from segpipe.defs.resources import WAREHOUSE_POOL, Warehouse
from segpipe.warehouse.segments import segment_sizes


@dg.asset(
    deps=["applied_upload"],
    pool=WAREHOUSE_POOL,
    group_name="segments",
    owners=["team:audience-data"],
    kinds={"duckdb"},
    automation_condition=dg.AutomationCondition.eager().without(
        # A rejected file never materializes its applied_upload partition; eager's "no upstream
        # partition missing" would then hold segments back forever after the first bad file.
        ~dg.AutomationCondition.any_deps_missing()
    ),
)
def segments(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Every segment and its current size, refreshed whenever an upload changes members."""
    with warehouse.connect() as con:
        sizes = segment_sizes(con)
    return dg.MaterializeResult(
        metadata={
            "segments": sizes.height,
            "members_total": int(sizes["members"].sum()) if sizes.height else 0,
            **{
                f"size: {name}": dg.MetadataValue.int(n)
                for name, n in sizes.select("name", "members").iter_rows()
            },
        }
    )
