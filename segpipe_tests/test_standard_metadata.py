"""Dagster's standard metadata in a real run's event log (row counts, column schemas, table
names), code references on the assets, and the reference check that blocks exports."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from segpipe.defs.uploads.jobs import range_tags
from segpipe_tests.conftest import REPO, Deployment, copy_of, csv

NEWSLETTER = "segmentation_2026-11-03_newsletter.csv"


@pytest.fixture
def applied(applied_sample: Deployment) -> Deployment:
    """The sample run once for the session (exit 2: its deliberately bad files), read only."""
    return applied_sample


def latest(deployment: Deployment, asset: str, partition: str | None = None) -> dict:
    """The metadata of the asset's (partition's) latest materialization in the event log."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None
    )
    with deployment.instance() as instance:
        records = instance.fetch_materializations(records_filter, limit=1).records
    assert records, f"{asset} {partition or ''} was never materialized"
    return {key: value.value for key, value in records[0].asset_materialization.metadata.items()}


def columns(schema: dg.TableSchema) -> list[tuple[str, str]]:
    return [(column.name, column.type) for column in schema.columns]


def warehouse_columns(deployment: Deployment, table: str) -> list[tuple[str, str]]:
    described = deployment.query(f"DESCRIBE {table}")
    return list(described.select("column_name", "column_type").iter_rows())


def test_upload_stages_carry_partition_row_counts_and_their_columns(applied: Deployment):
    upload = applied.upload(NEWSLETTER)
    lines = (REPO / "data" / "inbox" / NEWSLETTER).read_text().splitlines()
    rows_in = len([line for line in lines[1:] if line.strip()])
    for stage in ("raw_upload", "validated_upload", "resolved_upload", "applied_upload"):
        metadata = latest(applied, stage, upload["upload_id"])
        assert metadata["dagster/partition_row_count"] == upload["rows_in"] == rows_in, stage

    validated = latest(applied, "validated_upload", upload["upload_id"])["dagster/column_schema"]
    # The segmentation kind's pandera schema: identifier, interest and opt columns, each with
    # its polars type and the reason a row fails it.
    from segpipe.kinds.segmentation import SCHEMA

    by_name = {column.name: column for column in validated.columns}
    assert list(by_name) == list(SCHEMA.columns)
    assert {"email", "interest_id", "opt"} <= set(by_name)
    assert by_name["email"].type == "String"
    assert by_name["opt"].constraints.nullable is False
    assert "invalid email" in by_name["email"].constraints.other

    applied_upload = latest(applied, "applied_upload", upload["upload_id"])
    assert applied_upload["dagster/table_name"] == "warehouse.main.interest_memberships"
    assert columns(applied_upload["dagster/column_schema"]) == warehouse_columns(
        applied, "interest_memberships"
    )


def test_a_rejected_file_counts_its_rows_in(applied: Deployment):
    upload = applied.upload("segmentation_2026-11-06_missing_opt_column.csv")
    metadata = latest(applied, "raw_upload", upload["upload_id"])
    assert metadata["dagster/partition_row_count"] == upload["rows_in"] > 0


def test_an_upload_run_plans_each_stage_once_and_materializes_every_file(applied: Deployment):
    """The run over the sample's files logs one "planned" event per upload stage naming all its
    files (DAGSTER_SETTINGS in defs/instance.py), not one per stage and file; every file still
    gets its own materializations."""
    from dagster._core.events import DagsterEventType

    uploads = set(applied.query("SELECT upload_id FROM uploads")["upload_id"])
    assert len(uploads) > 1
    stages = ("raw_upload", "validated_upload", "resolved_upload", "applied_upload")
    with applied.instance() as instance:
        (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="process_upload_job"))
        planned = instance.all_logs(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        )
        materialized = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    by_asset = {}
    for entry in planned:
        data = entry.get_dagster_event().event_specific_data
        by_asset.setdefault(data.asset_key.to_user_string(), []).append(data)
    assert sorted(by_asset) == sorted(stages)
    for plans in by_asset.values():
        (plan,) = plans
        assert set(plan.partitions_subset.get_partition_keys()) == uploads
    raw = {
        e.get_dagster_event().partition
        for e in materialized
        if e.get_dagster_event().asset_key.path == ["raw_upload"]
    }
    assert raw == uploads


def test_segments_carry_members_in_total_and_the_members_table(applied: Deployment):
    metadata = latest(applied, "segments")
    members = applied.query("SELECT count(*) AS n FROM segment_members").item()
    assert metadata["dagster/row_count"] == members == metadata["members_total"] > 0
    assert metadata["dagster/table_name"] == "warehouse.main.segment_members"
    assert columns(metadata["dagster/column_schema"]) == warehouse_columns(
        applied, "segment_members"
    )


def test_each_export_counts_the_rows_of_its_list(applied: Deployment):
    from segpipe.exports.destinations import audience_of_segment

    syncs = applied.query(
        "SELECT y.destination, y.segment, s.domain, y.members FROM syncs y "
        "JOIN segments s USING (segment_id)"
    )
    assert syncs.height > 0
    for destination, segment, domain, members in syncs.iter_rows():
        # A subscriber segment's audience carries its Attentive domain (`shop_VIP`).
        partition = f"{destination}/{audience_of_segment(segment, domain)}"
        assert latest(applied, "segment_export", partition)["dagster/row_count"] == members


def test_assets_link_to_the_code_that_defines_them():
    from segpipe.definitions import defs

    definitions = defs()
    for asset, defined_by in {
        "segments": "def segments(",
        "segment_export": "def sync_exports(",
        "applied_upload": "def process_uploads(",
    }.items():
        key = dg.AssetKey(asset)
        spec = definitions.get_assets_def(key).specs_by_key[key]
        (reference,) = spec.metadata["dagster/code_references"].code_references
        source = Path(reference.file_path)
        assert source.is_relative_to(REPO / "segpipe" / "defs"), source
        # The line of the decorator; its function follows.
        lines = source.read_text().splitlines()[reference.line_number - 1 :]
        assert lines[0].startswith("@dg."), asset
        assert any(line.startswith(defined_by) for line in lines[:25]), asset


def test_a_broken_reference_blocks_every_sync(applied: Deployment, tmp_path, monkeypatch):
    applied = copy_of(applied, tmp_path / "deployment", monkeypatch)  # its warehouse is broken
    syncs_before = applied.query("SELECT count(*) AS n FROM syncs").item()
    segment_id = applied.query("SELECT min(segment_id) FROM segments WHERE kind = 'manual'").item()
    from segpipe.warehouse.connection import connect

    with connect(applied.data.warehouse) as con:  # a member nobody knows
        con.execute(f"INSERT INTO segment_memberships VALUES ({segment_id}, 987654, NULL, NULL)")

    code, printed = applied.run()

    assert code == 1, printed
    assert "references_resolve" in printed
    assert applied.query("SELECT count(*) AS n FROM syncs").item() == syncs_before
    # Neither the daily schedule nor the sensor ships it from the daemon either.
    from segpipe.definitions import defs
    from segpipe.defs.resources import build_resources

    definitions = defs()
    schedule = definitions.resolve_schedule_def("daily_destination_sync")
    with (
        applied.instance() as instance,
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, 8, 6, tzinfo=UTC),
            resources=build_resources(applied.data.root),
        ) as context,
    ):
        result = schedule.evaluate_tick(context)
    assert not result.run_requests
    assert "check references_resolve failed" in result.skip_message
    # A sync requested before the check failed (queued behind the refresh) refuses when it runs.
    from segpipe.defs.exports.partitions import exports_partitions

    with applied.instance() as instance:
        first, *_, last = instance.get_dynamic_partitions(exports_partitions.name)
        sync = definitions.resolve_job_def("sync_destinations_job").execute_in_process(
            instance=instance, raise_on_error=False, tags=range_tags(first, last)
        )
    assert not sync.success
    (failure,) = [e for e in sync.all_events if e.is_step_failure]
    assert (
        "not syncing a broken warehouse" in failure.step_failure_data.user_failure_data.description
    )
    assert applied.query("SELECT count(*) AS n FROM syncs").item() == syncs_before


def test_a_file_with_many_distinct_reasons_shows_the_most_common_and_counts_the_rest(
    deployment: Deployment,
):
    """Reasons that quote a row's value ("unknown interest_id 1003") are as many as the rows:
    the UI's table keeps the REASONS_SHOWN most common and counts the others in one row; the
    errors file still has every refused row."""
    from segpipe.ingest.report import REASONS_SHOWN

    rows = [f"m{i}@example.org,{1000 + i},in" for i in range(REASONS_SHOWN + 10)]
    rows += ["m0@example.org,1000,in", "m1@example.org,1000,in"]  # 1000 is the commonest
    deployment.drop("segmentation_2026-11-20_codes.csv", csv("email,interest_id,opt", *rows))
    code, printed = deployment.run()
    assert code == 0, printed  # applied, every row refused: a file outcome, not a failure
    upload = deployment.upload("segmentation_2026-11-20_codes.csv")
    table = latest(deployment, "applied_upload", upload["upload_id"])["reasons"]
    body = table.splitlines()[2:]  # after the header and its rule
    assert len(body) == REASONS_SHOWN + 1
    assert body[0] == "| unknown interest_id 1000 | 3 |"
    assert body[-1] == "| 10 other reasons (each refused row is in the errors file) | 10 |"
    assert deployment.errors("segmentation_2026-11-20_codes.csv").height == len(rows)
