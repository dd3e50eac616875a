"""The code location as `dagster dev` loads it: the graph, the pool, the sensor."""

import dagster as dg

from segpipe.definitions import defs


def test_the_asset_graph_reads_raw_validated_resolved_applied_segments():
    graph = defs().resolve_asset_graph()
    chain = ["raw_upload", "validated_upload", "resolved_upload", "applied_upload", "segments"]
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        parents = graph.get(dg.AssetKey(downstream)).parent_keys
        assert dg.AssetKey(upstream) in parents, f"{upstream} -> {downstream}"


def test_every_step_that_opens_duckdb_shares_one_pool():
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    for key in ("applied_upload", "segments"):
        assets_def = graph.get(dg.AssetKey(key)).assets_def
        assert assets_def.node_def.pools == {"duckdb"}, key


def test_uploads_are_dynamic_partitions_and_the_inbox_sensor_runs_by_default():
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    partitions = graph.get(dg.AssetKey("applied_upload")).partitions_def
    assert isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name == "uploads"
    sensor = definitions.resolve_sensor_def("receive_inbox_files")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_every_sensor_and_schedule_runs_without_being_switched_on():
    definitions = defs()
    sensors = {sensor.name: sensor.default_status for sensor in definitions.sensors}
    assert sensors == {
        name: dg.DefaultSensorStatus.RUNNING
        for name in (
            "receive_inbox_files",
            "refresh_segments_after_uploads",
            "observe_segment_definitions",
            "sync_destinations_after_segments",
            "deliver_after_sync",
            "warn_on_run_failure",
            "warn_on_run_success",
        )
    }
    schedules = {schedule.name: schedule.default_status for schedule in definitions.schedules}
    assert schedules == {
        "daily_destination_sync": dg.DefaultScheduleStatus.RUNNING,
        "daily_segment_refresh": dg.DefaultScheduleStatus.RUNNING,
    }


def test_deliveries_follow_the_exports_one_partition_per_destination_in_the_duckdb_pool():
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    deliveries = graph.get(dg.AssetKey("deliveries"))
    assert dg.AssetKey("segment_export") in deliveries.parent_keys
    assert deliveries.partitions_def.name == "deliveries"
    assert deliveries.assets_def.node_def.pools == {"duckdb"}
    job = definitions.resolve_job_def("deliver_exports_job")
    assert job.asset_layer.selected_asset_keys == {dg.AssetKey("deliveries")}
