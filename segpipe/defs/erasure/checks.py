"""Erased people stay erased: checked with the other warehouse invariants on `segments`."""

import dagster as dg

from segpipe.defs.common import SEGMENTS, WAREHOUSE_POOL
from segpipe.defs.resources import Warehouse
from segpipe.warehouse.erasures import returned_people


@dg.asset_check(
    asset=SEGMENTS,
    pool=WAREHOUSE_POOL,
    description="No constituent carries an identifier of an erased person (SPEC 4: a later "
    "upload naming them is ignored, never re-creates them).",
)
def erased_people_stay_erased(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        returned = returned_people(con)
    return dg.AssetCheckResult(passed=returned == 0, metadata={"erased_people_present": returned})
