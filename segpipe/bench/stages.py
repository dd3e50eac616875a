"""One benchmark stage, run in a child process of its own so its peak memory is its own.

`python -m segpipe.bench.stages <stage> <folder> <scale> <result.json>`: sets the stage up (a fresh
copy of the base warehouse, files in the inbox), then times only the work a user waits for, and
writes {"seconds", "rows", ...} to result.json.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

from segpipe.bench import generate
from segpipe.config import DataDir

# Files arrive one second apart from here, in name order (the runner orders by mtime).
FIRST_ARRIVAL = 1_790_000_000


def deployment(
    folder: Path, name: str, *, fresh: bool = True, warehouse: Path | None = None
) -> DataDir:
    """A data directory with its own Dagster home and a copy of `warehouse` (the base one)."""
    data = DataDir(folder / "runs" / name)
    if fresh:
        shutil.rmtree(data.root, ignore_errors=True)
        data.ensure()
        shutil.copy(warehouse or generate.base_warehouse(folder), data.warehouse)
        data.segments_yaml.write_text(generate.segments_yaml())
    os.environ.pop("DAGSTER_HOME", None)  # prepare_home makes <data dir>/.dagster
    return data


def drop(data: DataDir, files: list[Path]) -> None:
    for offset, source in enumerate(sorted(files)):
        target = data.inbox / source.name
        shutil.copy(source, target)
        os.utime(target, (FIRST_ARRIVAL + offset, FIRST_ARRIVAL + offset))


def settled() -> None:
    """Flush the copies a stage's setup wrote (a 1 GB warehouse, a 358 MB upload): otherwise
    their write-back to disk lands inside the timed section, and runs differ by seconds."""
    os.sync()


def floor(folder: Path, upload: str) -> dict:
    from segpipe.bench.floor import apply_upload

    data = deployment(folder, f"floor-{upload}")
    settled()
    started = time.perf_counter()
    applied = apply_upload(data.warehouse, generate.files(folder) / upload)
    return {"seconds": time.perf_counter() - started, "applied": applied}


def uploads(folder: Path, name: str, files: list[Path], warehouse: Path | None = None) -> dict:
    """The files through process_upload_job, the way `segpipe run` drives it."""
    data = deployment(folder, name, warehouse=warehouse)
    drop(data, files)
    import dagster as dg  # noqa: F401  (imported before the clock starts, as a CLI would)

    from segpipe import runner

    # A deployment that receives files has its Dagster instance already (the first `segpipe
    # run` or `dagster dev` made its storage): opening it is timed, making it is setup.
    _instance(data).dispose()
    settled()
    started = time.perf_counter()
    with _instance(data) as instance:
        defs = runner.build_definitions(data)
        pending = runner.pending_uploads(data)
        tags = runner.register_uploads(instance, pending)
        _fail_on(runner.run_job(defs, "process_upload_job", instance, tags))
    seconds = time.perf_counter() - started
    table = runner.uploads_table(data)
    return {
        "seconds": seconds,
        "files": table.height,
        "applied": int(table["rows_applied"].sum()),
        "statuses": sorted(set(table["status"].to_list())),
    }


def after_uploads(folder: Path, name: str) -> dict:
    """What `segpipe run` does once the files are in, over the deployment the `name` stage left:
    the segment refresh (rule windows from generate.AS_OF, the events' end), then the sync of
    every destination segment with its delta exports."""
    data = deployment(folder, name, fresh=False)
    from segpipe import runner
    from segpipe.defs.common import AS_OF_TAG

    settled()
    started = time.perf_counter()
    with _instance(data) as instance:
        defs = runner.build_definitions(data)
        as_of = {AS_OF_TAG: generate.AS_OF}
        _fail_on(runner.run_job(defs, "refresh_segments_job", instance, as_of))
        _fail_on(runner.sync_exports(defs, instance, data))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, **_refresh_work(data)}


def _refresh_work(data: DataDir) -> dict:
    """What the refresh and exports did: members of data-driven segments, rows synced."""
    from segpipe.warehouse.connection import connect

    with connect(data.warehouse) as con:
        members = con.execute("SELECT count(*) FROM segment_memberships").fetchone()[0]
        synced = con.execute(
            "SELECT count(*), coalesce(sum(members), 0), coalesce(sum(adds), 0) FROM syncs"
        ).fetchone()
    return {
        "data_driven_members": members,
        "segments_synced": synced[0],
        "members_synced": int(synced[1]),
        "adds_exported": int(synced[2]),
    }


SAMPLE_AS_OF = "2026-11-07T00:00:00"  # the sample's events are from the week before


def latency(folder: Path, name: str, runs_wanted: int) -> dict:
    """One one-row constituents file through `segpipe run` as a whole process, `runs_wanted`
    times (the scale's `latency_runs`; a single run moves with whatever else the machine does),
    each timed by wall clock, against `python -c "import dagster"` and Dagster's own cost for
    the same runs with assets that do nothing (segpipe.bench.dagster_floor), timed in turns with
    it.

    `name` is `latency_sample` (the sample deployment of data/, applied once first) or
    `latency_warehouse` (a copy of this scale's base warehouse, refreshed and synced once first).
    Returns {"seconds": median run, "runs_s", "import_dagster_s": median import, "import_runs_s",
    "vs_import": the ratio SPEC section 9 bounds, "dagster_floor_s", "dagster_floor_runs_s",
    "dagster_floor_vs_import"}; RuntimeError when a run does not exit 0.
    """
    if name == "latency_sample":
        data = DataDir(folder / "runs" / name)
        shutil.rmtree(data.root, ignore_errors=True)
        os.environ.pop("DAGSTER_HOME", None)  # prepare_home makes <data dir>/.dagster
        _segpipe("sample", str(data.root))
        as_of = SAMPLE_AS_OF
    else:
        data = deployment(folder, name)
        as_of = generate.AS_OF
    run = ["run", "--data-dir", str(data.root), "--as-of", as_of]
    _segpipe(*run, allowed=(0, 2))  # the sample's deliberately bad files exit 2
    settled()
    runs, imports, floors = [], [], []
    floor = (sys.executable, "-m", "segpipe.bench.dagster_floor", str(data.root / ".dagster_floor"))
    _timed(*floor)  # creates its instance, outside the timed turns
    for attempt in range(runs_wanted):
        one_row = data.inbox / f"constituents_latency_{attempt}.csv"
        one_row.write_text(f"email,first_name\nlatency{attempt}@example.org,Lat\n")
        # A file its sender finished writing a while ago: the inbox's settle interval (a wait
        # for senders, not work) is left out of the figure.
        finished = time.time() - 60
        os.utime(one_row, (finished, finished))
        imports.append(_timed(sys.executable, "-c", "import dagster"))
        floors.append(_timed(*floor))
        runs.append(_timed(sys.executable, "-m", "segpipe.cli", *run))
    median, baseline, floor_s = (sorted(t)[len(t) // 2] for t in (runs, imports, floors))
    return {
        "seconds": median,
        "runs_s": [round(s, 3) for s in runs],
        "import_dagster_s": round(baseline, 3),
        "import_runs_s": [round(s, 3) for s in imports],
        "vs_import": round(median / baseline, 2),
        "dagster_floor_s": round(floor_s, 3),
        "dagster_floor_runs_s": [round(s, 3) for s in floors],
        "dagster_floor_vs_import": round(floor_s / baseline, 2),
    }


def _segpipe(*args: str, allowed: tuple[int, ...] = (0,)) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "segpipe.cli", *args], capture_output=True)
    if done.returncode not in allowed:
        raise RuntimeError(f"segpipe {args[0]} exited {done.returncode}: {done.stdout[-2000:]!r}")


def _timed(*command: str) -> float:
    """Wall seconds of one whole process that must exit 0."""
    import subprocess

    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[2:]} exited {done.returncode}: {done.stdout[-2000:]!r}")
    return seconds


def _instance(data: DataDir):
    import dagster as dg

    from segpipe.defs.instance import ensure_warehouse_pool, prepare_home

    prepare_home(data)
    instance = dg.DagsterInstance.get()
    ensure_warehouse_pool(instance)
    return instance


def _fail_on(failures: list) -> None:
    """Raises RuntimeError naming the run's problems (runner.RunProblem), if it had any."""
    if failures:
        raise RuntimeError("; ".join(map(str, failures)))


def run_stage(stage: str, folder: Path, scale: str) -> dict:
    files = generate.files(folder)
    if stage == "generate":
        from segpipe.bench.scales import SCALES

        cached = generate.is_generated(folder, SCALES[scale])
        started = time.perf_counter()
        rows = generate.generate(folder, SCALES[scale])
        return {"seconds": time.perf_counter() - started, "rows": rows, "cached": cached}
    if stage == "floor_upload":
        return floor(folder, generate.BIG_UPLOAD)
    if stage == "floor_10k":
        return floor(folder, generate.SMALL_UPLOAD)
    if stage == "upload":
        return uploads(folder, "upload", [files / generate.BIG_UPLOAD])
    if stage == "after_uploads":
        return after_uploads(folder, "upload")
    if stage == "upload_10k":
        return uploads(folder, "upload_10k", [files / generate.SMALL_UPLOAD])
    if stage == "upload_10k_tenth":
        tenth = generate.tenth_warehouse(folder)
        return uploads(folder, "upload_10k_tenth", [files / generate.SMALL_UPLOAD], tenth)
    if stage == "small_files":
        return uploads(folder, "small_files", sorted((files / "small").glob("*.csv")))
    if stage in ("latency_sample", "latency_warehouse"):
        from segpipe.bench.scales import SCALES

        return latency(folder, stage, SCALES[scale].latency_runs)
    raise ValueError(f"unknown stage {stage}")


def main(argv: list[str]) -> int:
    stage, folder, scale, result = argv
    outcome = run_stage(stage, Path(folder), scale)
    Path(result).write_text(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    sys.exit(main(sys.argv[1:]))
