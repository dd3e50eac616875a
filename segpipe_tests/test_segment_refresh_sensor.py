"""What refreshes segments under `dagster dev`, evaluated the way the daemon does, tick by tick,
with the requested runs executed between ticks: the sensor after uploads, the automation
condition after segments.yaml changes."""

import dagster as dg
import pytest

from segpipe import runner
from segpipe.defs.segments.sensors import refresh_segments_after_uploads
from segpipe_tests.conftest import Deployment, csv


@pytest.fixture
def instance(deployment: Deployment):
    with deployment.instance() as instance:
        yield instance


class Daemon:
    """Ticks of the sensor with its cursor carried over, and the runs a user's files start."""

    def __init__(self, deployment: Deployment, instance: dg.DagsterInstance):
        self.deployment, self.instance, self.cursor = deployment, instance, None
        self.defs = runner.build_definitions(deployment.data)

    def tick(self) -> list[dg.RunRequest]:
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursor) as context:
            result = refresh_segments_after_uploads.evaluate_tick(context)
        self.cursor = result.cursor
        return result.run_requests or []

    def apply(self, name: str, content: str) -> None:
        """A file dropped in the inbox and applied by its own run."""
        self.deployment.drop(name, content)
        pending = runner.pending_uploads(self.deployment.data)
        tags = runner.register_uploads(self.instance, pending)
        self.run("process_upload_job", tags)

    def observe_segments_yaml(self) -> None:
        """What the five-minute observation of segments.yaml does."""
        key = dg.AssetKey("segment_definitions")
        job = self.defs.resolve_implicit_job_def_def_for_assets([key])
        job.execute_in_process(instance=self.instance, asset_selection=[key])

    def run(self, job: str, tags: dict | None = None) -> None:
        result = self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, tags=tags, run_config=runner.QUIET
        )
        assert result.success


PEOPLE = csv("member_id,email", "1,ana@example.org", "2,ben@example.org")


def opt_in(member_id: int) -> str:
    return csv("member_id,interest_name,opt", f"{member_id},Weekly Digest,in")


def test_each_applied_batch_is_followed_by_one_refresh(deployment, instance):
    daemon = Daemon(deployment, instance)
    assert daemon.tick() == []  # nothing applied yet

    daemon.apply("constituents_a.csv", PEOPLE)
    (first,) = daemon.tick()
    assert daemon.tick() == []  # requested once, not again while it waits in the queue

    daemon.run("refresh_segments_job", first.tags)
    assert daemon.tick() == []


def test_a_batch_applied_right_after_a_refresh_gets_its_own(deployment, instance):
    daemon = Daemon(deployment, instance)
    daemon.apply("constituents_a.csv", PEOPLE)
    (first,) = daemon.tick()

    # Between two ticks: the requested refresh runs, then another batch applies.
    daemon.run("refresh_segments_job", first.tags)
    daemon.apply("segmentation_b.csv", opt_in(1))

    (second,) = daemon.tick()
    assert second.run_key != first.run_key
    daemon.run("refresh_segments_job", second.tags)
    assert deployment.members("Weekly Digest Opt-In") == {1}
    assert daemon.tick() == []


def test_uploads_a_run_already_refreshed_after_request_nothing(deployment, instance):
    daemon = Daemon(deployment, instance)
    daemon.apply("constituents_a.csv", PEOPLE)
    daemon.apply("segmentation_b.csv", opt_in(2))
    daemon.run("refresh_segments_job")  # `segpipe run` refreshes right after its uploads

    assert daemon.tick() == []


def test_a_refresh_already_queued_is_not_requested_twice(deployment, instance):
    """The inbox sensor queues a refresh behind each upload run: while it waits, this sensor
    requests none; canceled before it ran, the upload is refreshed by this sensor after all."""
    daemon = Daemon(deployment, instance)
    daemon.apply("constituents_a.csv", PEOPLE)
    # Not started yet (a queued run needs a code location's origin, which only the daemon has).
    waiting = dg.DagsterRunStatus.NOT_STARTED
    queued = dg.DagsterRun(job_name="refresh_segments_job", status=waiting)
    instance.add_run(queued)

    assert daemon.tick() == []
    instance.report_run_canceled(queued)
    (refresh,) = daemon.tick()
    daemon.run("refresh_segments_job", refresh.tags)
    assert daemon.tick() == []


def requested_by_automation(daemon: Daemon, cursor=None):
    """One evaluation of the automation conditions observe_segment_definitions evaluates."""
    result = dg.evaluate_automation_conditions(
        defs=daemon.defs,
        instance=daemon.instance,
        asset_selection=dg.AssetSelection.groups("segments"),
        cursor=cursor,
    )
    segments = result.get_num_requested(dg.AssetKey("segments"))
    return segments, result.cursor


def test_a_changed_segments_yaml_refreshes_segments_and_an_upload_leaves_that_to_the_sensor(
    deployment, instance
):
    daemon = Daemon(deployment, instance)
    deployment.data.segments_yaml.write_text("segments: []\n")
    daemon.apply("constituents_a.csv", PEOPLE)
    daemon.run("refresh_segments_job")  # observes segments.yaml, then refreshes
    _, cursor = requested_by_automation(daemon)

    daemon.apply("segmentation_b.csv", opt_in(1))
    requested, cursor = requested_by_automation(daemon, cursor)
    assert requested == 0  # the sensor's job: one refresh, not two

    daemon.observe_segments_yaml()  # unchanged: the same data version
    requested, cursor = requested_by_automation(daemon, cursor)
    assert requested == 0

    deployment.data.segments_yaml.write_text(
        "segments:\n  - name: Everyone\n    all:\n      - {attribute: email, op: exists}\n"
    )
    daemon.observe_segments_yaml()
    requested, cursor = requested_by_automation(daemon, cursor)
    assert requested == 1
