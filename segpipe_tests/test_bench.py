"""`segpipe bench` end to end at the tiny scale: every stage runs through the real jobs and the
JSON a user compares runs with has every stage, with time and rows. Timing is not asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segpipe.bench.generate import BIG_UPLOAD, files
from segpipe.bench.run import SHORT_STAGE_RUNS
from segpipe.cli import main
from segpipe.warehouse.connection import connect

# `segpipe bench` end to end.
pytestmark = pytest.mark.e2e

STAGES = {
    "generate",
    "floor_upload",
    "upload",
    "after_uploads",
    "upload_and_after_uploads",
    "floor_10k",
    "upload_10k",
    "upload_10k_tenth",
    "small_files",
    "latency_sample",
    "latency_warehouse",
}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("bench")
    extra = folder / "copy.json"
    assert main(["bench", "--scale", "tiny", "--dir", str(folder), "--json", str(extra)]) == 0
    report = json.loads((folder / "bench.json").read_text())
    assert json.loads(extra.read_text()) == report
    return folder, report


def test_every_stage_is_timed_with_rows_and_memory(bench_run):
    _, report = bench_run
    stages = {s["stage"]: s for s in report["stages"]}
    assert set(stages) == STAGES
    for stage in stages.values():
        assert stage["seconds"] > 0, stage
        assert stage["rows"] > 0, stage
        assert stage["peak_rss_mib"] > 0, stage
    assert stages["upload"]["vs_floor"] > 0
    assert {t["target"] for t in report["targets"]} >= {"upload <= 1.5x floor"}


def test_pipeline_and_floor_apply_the_same_upload_alike(bench_run):
    """The floor is only a fair floor if it does the same work: same memberships afterwards."""
    folder, report = bench_run
    stages = {s["stage"]: s for s in report["stages"]}
    runs = folder / "runs"
    counts = []
    for run in (runs / f"floor-{BIG_UPLOAD}", runs / "upload"):
        with connect(run / "warehouse.duckdb") as con:
            counts.append(
                con.execute(
                    "SELECT status, count(*) FROM interest_memberships GROUP BY ALL ORDER BY 1"
                ).fetchall()
            )
    assert counts[0] == counts[1]
    assert stages["upload"]["detail"]["applied"] == stages["floor_upload"]["detail"]["applied"]


def test_small_files_all_apply_in_one_run(bench_run):
    folder, report = bench_run
    small = next(s for s in report["stages"] if s["stage"] == "small_files")
    expected = len(list((files(folder) / "small").glob("*.csv")))
    assert small["detail"]["files"] == expected == report["scale"]["small_files"]
    assert small["detail"]["statuses"] == ["applied"]


def test_the_tenth_table_holds_a_tenth_of_the_memberships_and_takes_the_same_upload(bench_run):
    folder, report = bench_run
    stages = {s["stage"]: s for s in report["stages"]}
    sizes = []
    for run in ("upload_10k", "upload_10k_tenth"):
        with connect(folder / "runs" / run / "warehouse.duckdb") as con:
            sizes.append(con.execute("SELECT count(*) FROM interest_memberships").fetchone()[0])
    base = report["generated"]["rows"]["interest_memberships"]
    assert sizes[0] >= base and base // 10 <= sizes[1] < base // 5
    applied = [stages[name]["detail"]["applied"] for name in ("upload_10k", "upload_10k_tenth")]
    assert applied[0] == applied[1] > 0
    for name in ("upload_10k", "upload_10k_tenth"):  # short stages: the median of their runs
        runs = stages[name]["detail"]["runs_s"]
        assert len(runs) == SHORT_STAGE_RUNS
        assert stages[name]["seconds"] == sorted(runs)[len(runs) // 2]
    growth = next(t for t in report["targets"] if t["target"].startswith("10K upload, 10x"))
    expected = stages["upload_10k"]["seconds"] / stages["upload_10k_tenth"]["seconds"]
    assert growth["measured"] == pytest.approx(expected, rel=0.01)


def test_latency_stages_time_whole_runs_against_importing_dagster(bench_run):
    """One one-row file through `segpipe run` as a process, on the sample and on the scale's
    warehouse: each timed run applied its file, and the ratio is to `import dagster` timed in the
    same stage."""
    folder, report = bench_run
    stages = {s["stage"]: s for s in report["stages"]}
    for name in ("latency_sample", "latency_warehouse"):
        detail = stages[name]["detail"]
        assert len(detail["runs_s"]) == len(detail["import_runs_s"]) == 1
        # Both figures are stored rounded to the millisecond; the ratio is of the unrounded ones.
        expected = stages[name]["seconds"] / detail["import_dagster_s"]
        assert detail["vs_import"] == pytest.approx(expected, abs=0.01)
        with connect(folder / "runs" / name / "warehouse.duckdb") as con:
            applied = con.execute(
                "SELECT count(*) FROM uploads WHERE file_name LIKE 'constituents_latency_%' "
                "AND status = 'applied' AND rows_applied = 1"
            ).fetchone()[0]
        assert applied == 1, name
    assert {t["target"] for t in report["targets"]} >= {
        "latency_sample: one-row file through segpipe run / import dagster",
        "latency_warehouse: one-row file through segpipe run / import dagster",
    }


FLOOR_JOBS = ("process_upload_job", "refresh_segments_job")


def _steps_of_latest_runs(home: Path) -> dict[str, list[str]]:
    """Each job's latest run in the instance at `home`: its steps, in the order they started."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        latest = {}
        for run in instance.get_runs():  # newest first
            if run.job_name in latest or run.job_name not in FLOOR_JOBS:
                continue
            assert run.status == dg.DagsterRunStatus.SUCCESS, run.job_name
            latest[run.job_name] = [
                record.step_key
                for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
            ]
        return latest


def test_the_latency_floor_makes_the_runs_segpipe_run_makes(bench_run):
    """The latency stages' Dagster floor is timed in turns with the runs and, with assets that do
    nothing, makes the jobs and steps `segpipe run` made for the one-row file: what it costs is
    Dagster's part of that run."""
    folder, report = bench_run
    stages = {s["stage"]: s for s in report["stages"]}
    for name in ("latency_sample", "latency_warehouse"):
        detail = stages[name]["detail"]
        assert len(detail["dagster_floor_runs_s"]) == len(detail["runs_s"]) == 1
        expected = detail["dagster_floor_s"] / detail["import_dagster_s"]
        assert detail["dagster_floor_vs_import"] == pytest.approx(expected, abs=0.01)
        deployment = folder / "runs" / name
        floor = _steps_of_latest_runs(deployment / ".dagster_floor")
        assert floor == _steps_of_latest_runs(deployment / ".dagster"), name
        assert floor["refresh_segments_job"][:2] == ["segment_definitions", "segments"]
