"""Dagster's own cost for the runs `segpipe run` makes of one file: the latency stages' floor.

`python -m segpipe.bench.dagster_floor <dagster home>` does, with assets that do nothing, what
`segpipe run` does in Dagster for one new file: it creates the instance (SQLite storage, segpipe's
dagster.yaml and settings), registers the file's upload partition, runs the upload job (one step
logging the four stages' materializations and yielding the three upload checks) and the refresh
job (segments.yaml observed, `segments`, its four checks), each step in the `duckdb` pool. It
imports Dagster and nothing of segpipe's domains, DuckDB or polars: what it costs is what any
design keeping SPEC section 8's "through the same Dagster assets" pays before doing any work.
"""

import sys
import uuid
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from segpipe.defs.common import QUIET, SERIAL_TAG, WAREHOUSE_POOL
from segpipe.defs.instance import apply_settings, ensure_warehouse_pool, segpipe_home

STAGES = ("raw_upload", "validated_upload", "resolved_upload", "applied_upload")
UPLOAD_CHECKS = ("files_applied", "upload_counts_add_up", "subscriber_files_are_never_mixed")
SEGMENT_CHECKS = (
    "references_resolve",
    "erased_people_stay_erased",
    "segment_rules_evaluate",
    "segment_sizes_are_steady",
)
uploads = dg.DynamicPartitionsDefinition(name="floor_uploads")


@dg.multi_asset(
    specs=[dg.AssetSpec(s, partitions_def=uploads, skippable=True) for s in STAGES],
    check_specs=[dg.AssetCheckSpec(c, asset="applied_upload") for c in UPLOAD_CHECKS],
    partitions_def=uploads,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
    pool=WAREHOUSE_POOL,
)
def process_uploads(context: dg.AssetExecutionContext):
    for key in context.partition_keys:
        for stage in STAGES:
            context.log_event(dg.AssetMaterialization(stage, partition=key))
    for check in UPLOAD_CHECKS:
        yield dg.AssetCheckResult(asset_key="applied_upload", check_name=check, passed=True)


@dg.observable_source_asset
def segment_definitions() -> dg.ObserveResult:
    return dg.ObserveResult(data_version=dg.DataVersion("unchanged"))


@dg.asset(deps=["applied_upload", segment_definitions], pool=WAREHOUSE_POOL)
def segments() -> dg.MaterializeResult:
    return dg.MaterializeResult()


def _check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=segments, name=name, pool=WAREHOUSE_POOL)
    def passes() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    return passes


DEFS = dg.Definitions(
    assets=[process_uploads, segment_definitions, segments],
    asset_checks=[_check(name) for name in SEGMENT_CHECKS],
    jobs=[
        dg.define_asset_job(
            "process_upload_job", selection=dg.AssetSelection.assets(*STAGES), tags=SERIAL_TAG
        ),
        # The asset selected with its checks, as segpipe's refresh_segments_job selects it.
        dg.define_asset_job(
            "refresh_segments_job",
            selection=dg.AssetSelection.assets("segments", "segment_definitions"),
            tags=SERIAL_TAG,
        ),
    ],
    executor=dg.in_process_executor,
)


def main(home: Path) -> int:
    """Both runs on the instance in `home` (created with segpipe's dagster.yaml if new); 0 when
    both succeed."""
    apply_settings()
    with dg.DagsterInstance.from_config(str(segpipe_home(home))) as instance:
        ensure_warehouse_pool(instance)
        upload = f"constituents_{uuid.uuid4().hex[:8]}.csv"
        instance.add_dynamic_partitions(uploads.name, [upload])
        ranged = {ASSET_PARTITION_RANGE_START_TAG: upload, ASSET_PARTITION_RANGE_END_TAG: upload}
        ok = True
        for job, tags in (("process_upload_job", ranged), ("refresh_segments_job", {})):
            result = DEFS.resolve_job_def(job).execute_in_process(
                instance=instance, raise_on_error=False, run_config=QUIET, tags=tags
            )
            ok = ok and result.success
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
