"""Segments refresh on a clock: the daily schedule, evaluated against a real instance day after
day, lets people leave a `within_days` rule without any upload, before the 06:00 sync; and the
freshness daemon marks `segments` and `segment_export` overdue when they miss their deadline."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon
from dagster._utils.schedules import schedule_execution_time_iterator

from segpipe_tests.conftest import REPO, Deployment, csv

CONSTITUENTS = csv(
    "email,first_name,email_opt_in", "ann@example.org,Ann,yes", "bob@example.org,Bob,yes"
)
# Ann last looked on Nov 2 at 10:00, Bob on Nov 5 at 10:00 (UTC).
EVENTS = csv(
    "email,event,timestamp",
    "ann@example.org,viewed_offer,2026-11-01T09:00:00Z",
    "ann@example.org,viewed_offer,2026-11-02T10:00:00Z",
    "bob@example.org,viewed_offer,2026-11-05T10:00:00Z",
)
SEGMENTS_YAML = """\
segments:
  - name: Recent viewers
    all:
      - {event: viewed_offer, within_days: 7}
destinations:
  - {name: crm, format: csv, key: email, segments: [Recent viewers]}
"""
SEGMENTS = dg.AssetKey("segments")
EXPORTS = dg.AssetKey("segment_export")


def _definitions() -> dg.Definitions:
    from segpipe.definitions import defs

    return defs()


def viewers(deployment: Deployment) -> set[str]:
    rows = deployment.query(
        "SELECT c.email FROM segment_members m JOIN segments s USING (segment_id) "
        "JOIN constituents c USING (cons_id) WHERE s.name = 'Recent viewers'"
    )
    return set(rows["email"])


def exported(deployment: Deployment) -> set[str]:
    members = deployment.data.exports / "crm" / "Recent_viewers" / "members.csv"
    return set(members.read_text().split()[1:])


def _ticks(schedule: dg.ScheduleDefinition, start: datetime, end: datetime) -> list[datetime]:
    ticks = []
    """The schedule's ticks from `start` to `end`, as the scheduler computes them."""
    iterator = schedule_execution_time_iterator(
        start.timestamp(), schedule.cron_schedule, schedule.execution_timezone
    )
    for tick in iterator:
        if tick > end:
            return ticks
        ticks.append(tick)
    return ticks


def test_daily_refresh_lets_people_leave_a_time_window_before_each_sync(deployment: Deployment):
    deployment.data.segments_yaml.write_text(SEGMENTS_YAML)
    deployment.drop("constituents_2026-11-01.csv", CONSTITUENTS)
    deployment.drop("events_2026-11-05.csv", EVENTS)
    code, printed = deployment.run(as_of=datetime(2026, 11, 6, 12))
    assert code == 0, printed
    assert viewers(deployment) == {"ann@example.org", "bob@example.org"}

    with deployment.instance():  # Dagster reads its definitions state from the current instance
        defs = _definitions()
    refresh = defs.resolve_schedule_def("daily_segment_refresh")
    sync = defs.resolve_schedule_def("daily_destination_sync")
    assert refresh.default_status == dg.DefaultScheduleStatus.RUNNING
    start = datetime(2026, 11, 7, tzinfo=UTC)
    days = _ticks(refresh, start, start + timedelta(days=6, hours=23))
    syncs = _ticks(sync, start, start + timedelta(days=6, hours=23))
    # Once a day, each refresh half an hour before that day's sync.
    assert [t.strftime("%d %H:%M") for t in days] == [f"{d:02} 05:30" for d in range(7, 14)]
    assert [s - t for t, s in zip(days, syncs, strict=True)] == [timedelta(minutes=30)] * 7

    seen = {}
    with deployment.instance() as instance:
        for tick in days:
            with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=tick
            ) as context:
                (request,) = refresh.evaluate_tick(context).run_requests
            result = defs.resolve_job_def("refresh_segments_job").execute_in_process(
                instance=instance, tags=request.tags
            )
            assert result.success
            seen[tick.day] = viewers(deployment)
        leaving = deployment.query(
            "SELECT h.run_id FROM membership_history h JOIN segments s USING (segment_id) "
            "JOIN constituents c USING (cons_id) "
            "WHERE s.name = 'Recent viewers' AND c.email = 'ann@example.org' AND change = 'left'"
        )
        ann_left_in = instance.get_run_by_id(leaving["run_id"].item())

    # Ann's last view (Nov 2, 10:00) leaves the 7-day window between the ticks of the 9th and
    # the 10th; Bob's (Nov 5, 10:00) between those of the 12th and the 13th. No file arrived.
    both, bob = {"ann@example.org", "bob@example.org"}, {"bob@example.org"}
    assert seen == {7: both, 8: both, 9: both, 10: bob, 11: bob, 12: bob, 13: set()}
    assert ann_left_in.tags["dagster/schedule_name"] == "daily_segment_refresh"
    assert ann_left_in.tags["segpipe/as_of"] == "2026-11-10T05:30:00+00:00"


def test_refresh_cron_is_set_per_deployment():
    program = (
        "from segpipe.definitions import defs; "
        "print(defs().resolve_schedule_def('daily_segment_refresh').cron_schedule)"
    )
    env = {**os.environ, "SEGPIPE_SEGMENT_REFRESH_CRON": "15 4 * * 1-5"}
    printed = subprocess.run(
        [sys.executable, "-c", program], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert printed.stdout.strip() == "15 4 * * 1-5", printed.stderr


def freshness(instance: dg.DagsterInstance, at: datetime) -> dict[str, FreshnessState]:
    """One iteration of Dagster's freshness daemon at `at`, over the code location loaded in
    this process; the states it stored, as the UI reads them."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="segpipe.definitions", working_directory=str(REPO)),
        location_name="segpipe",
    )
    with (
        freeze_time(at),
        WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace,
    ):
        list(FreshnessDaemon().run_iteration(workspace))
    records = instance.get_freshness_state_records([SEGMENTS, EXPORTS])
    return {key.path[-1]: record.freshness_state for key, record in records.items()}


def test_segments_and_exports_turn_overdue_when_a_day_passes_without_them(
    deployment: Deployment,
):
    deployment.data.segments_yaml.write_text(SEGMENTS_YAML)
    deployment.drop("constituents_2026-11-01.csv", CONSTITUENTS)
    deployment.drop("events_2026-11-05.csv", EVENTS)
    with deployment.instance() as instance:
        assert instance.freshness_enabled
        assert "FRESHNESS_DAEMON" in instance.get_required_daemon_types()
        nothing_yet = freshness(instance, datetime.now(UTC))
    assert nothing_yet == {
        "segments": FreshnessState.UNKNOWN,
        "segment_export": FreshnessState.UNKNOWN,
    }

    code, printed = deployment.run(as_of=datetime(2026, 11, 6, 12))
    assert code == 0, printed
    refreshed = datetime.now(UTC)
    # The next 06:00 UTC and the hour after it: the sync's deadline for both assets.
    sync = (refreshed + timedelta(days=1)).replace(hour=6, minute=0, second=0, microsecond=0)
    with deployment.instance() as instance:
        assert freshness(instance, refreshed) == {
            "segments": FreshnessState.PASS,
            "segment_export": FreshnessState.PASS,
        }
        # A whole day and the next sync pass with no refresh and no export: both overdue.
        overdue = freshness(instance, sync + timedelta(days=1, hours=2))
    assert overdue == {"segments": FreshnessState.FAIL, "segment_export": FreshnessState.FAIL}
    assert exported(deployment) == {"ann@example.org", "bob@example.org"}
