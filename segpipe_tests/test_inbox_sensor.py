"""The inbox sensor, evaluated the way the daemon does: requests applied to the instance between
ticks, then the requested run executed."""

import dagster as dg
import pytest

from segpipe.defs.resources import build_resources
from segpipe.defs.uploads.partitions import uploads_partitions
from segpipe.defs.uploads.sensors import receive_inbox_files
from segpipe.ingest.receive import receive_inbox
from segpipe_tests.conftest import SAMPLE, Deployment, csv

CONSTITUENTS = "constituents_2026-11-01.csv"
NEWSLETTER = "segmentation_2026-11-03_newsletter.csv"


@pytest.fixture
def instance(deployment: Deployment):
    with deployment.instance() as instance:
        yield instance


def tick(deployment: Deployment, instance: dg.DagsterInstance):
    # A context with resources holds them (and an instance) until it exits: `with` releases
    # them here, not whenever the garbage collector runs, on whatever thread it runs.
    with dg.build_sensor_context(
        instance=instance, resources=build_resources(deployment.data.root)
    ) as context:
        return receive_inbox_files(context)


def apply_as_daemon(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)


def registered(instance: dg.DagsterInstance) -> list[str]:
    return instance.get_dynamic_partitions(uploads_partitions.name)


def drop_sample(deployment: Deployment, *names: str) -> None:
    for name in names:
        deployment.drop(name, (SAMPLE / "inbox" / name).read_bytes())


def test_new_files_become_partitions_and_one_run_over_them(deployment, instance):
    drop_sample(deployment, CONSTITUENTS, NEWSLETTER)

    result = tick(deployment, instance)

    assert isinstance(result, dg.SensorResult)
    (add,) = result.dynamic_partitions_requests
    assert add.partitions_def_name == "uploads"
    first, last = add.partition_keys
    assert CONSTITUENTS.lower() in first and NEWSLETTER.lower() in last  # arrival order
    run, refresh = result.run_requests
    assert run.job_name == "process_upload_job"
    assert run.tags["dagster/asset_partition_range_start"] == first
    assert run.tags["dagster/asset_partition_range_end"] == last
    # The refresh comes with it, queued behind it: not a sensor tick after it ends.
    assert refresh.job_name == "refresh_segments_job"
    assert list(deployment.data.inbox.iterdir()) == []  # archived before anything else


def test_redelivered_tick_requests_nothing_once_partitions_are_registered(deployment, instance):
    drop_sample(deployment, CONSTITUENTS)
    apply_as_daemon(instance, tick(deployment, instance))

    again = tick(deployment, instance)

    assert isinstance(again, dg.SkipReason)
    assert len(registered(instance)) == 1


def test_a_file_archived_by_a_tick_that_died_is_recovered(deployment, instance):
    drop_sample(deployment, CONSTITUENTS)
    (lost,) = receive_inbox(deployment.data)  # archived, then the tick died before registering

    result = tick(deployment, instance)

    assert result.dynamic_partitions_requests[0].partition_keys == [lost.upload_id]
    assert result.run_requests[0].tags["dagster/asset_partition_range_end"] == lost.upload_id


def test_files_still_arriving_are_left_in_the_inbox(deployment, instance):
    row = csv("email,interest_name,opt", "a@example.org,News,in")
    for name in ("segmentation_big.csv.part", "segmentation_b.csv.tmp", ".segmentation_c.csv"):
        deployment.drop(name, row)

    assert isinstance(tick(deployment, instance), dg.SkipReason)
    assert len(list(deployment.data.inbox.iterdir())) == 3
    assert registered(instance) == []


def test_the_requested_run_applies_the_files_in_arrival_order(deployment, instance):
    from segpipe.definitions import defs

    drop_sample(deployment, CONSTITUENTS, NEWSLETTER)
    result = tick(deployment, instance)
    apply_as_daemon(instance, result)

    run = (
        defs()
        .resolve_job_def("process_upload_job")
        .execute_in_process(instance=instance, tags=result.run_requests[0].tags)
    )

    assert run.success
    assert deployment.upload(CONSTITUENTS)["status"] == "applied"
    newsletter = deployment.upload(NEWSLETTER)
    assert newsletter["status"] == "applied" and newsletter["rows_applied"] > 0
    materialized = instance.get_materialized_partitions(dg.AssetKey("applied_upload"))
    assert materialized == set(registered(instance))
