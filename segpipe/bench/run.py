"""`segpipe bench`: generate the data, run the floor and the pipeline stage by stage, report.

Each stage runs in a child process (segpipe.bench.stages); its peak RSS is the child's own
`ru_maxrss` from wait4, so one stage's memory never hides in another's.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from segpipe.bench.scales import SCALES, Scale

PEAK_MEMORY_LIMIT = 2 * 1024**3
PER_FILE_LIMIT = 0.2
# A 10K upload into 50M memberships against the same upload into 5M: "costs in proportion to
# the upload, not the table" allows run-to-run noise, not a cost that grows with the table.
TABLE_GROWTH_LIMIT = 1.25
# One one-row file through `segpipe run`, against `python -c "import dagster"` (SPEC section 9).
LATENCY_LIMITS = {"latency_sample": 3.0, "latency_warehouse": 5.0}
# The two 10K-upload stages are short enough that one run moves with what the machine's page
# cache still holds: they run in turns this many times, and count by the median.
SHORT_STAGE_RUNS = 3


@dataclass
class Stage:
    name: str
    seconds: float
    rows: int
    peak_rss: int  # bytes
    floor: str | None = None  # the stage this one is compared with
    detail: dict | None = None

    def as_dict(self, by_name: dict[str, Stage]) -> dict:
        ratio = None
        if self.floor and by_name.get(self.floor) and by_name[self.floor].seconds > 0:
            ratio = self.seconds / by_name[self.floor].seconds
        return {
            "stage": self.name,
            "seconds": round(self.seconds, 3),
            "rows": self.rows,
            "rows_per_s": round(self.rows / self.seconds) if self.seconds > 0 else None,
            "peak_rss_mib": round(self.peak_rss / 1024**2, 1),
            "vs_floor": round(ratio, 2) if ratio is not None else None,
            "floor": self.floor,
            **({"detail": self.detail} if self.detail else {}),
        }


def run_child(stage: str, folder: Path, scale: Scale) -> tuple[dict, int]:
    """Run one stage in a fresh interpreter; (its result, its peak RSS in bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        child = subprocess.Popen(
            [sys.executable, "-m", "segpipe.bench.stages", stage, str(folder), scale.name,
             str(result)]
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise RuntimeError(f"bench stage {stage} failed (exit {child.returncode})")
        return json.loads(result.read_text()), usage.ru_maxrss * 1024  # Linux reports KiB


def bench(scale: Scale, folder: Path, out: TextIO = sys.stdout) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    stages: list[Stage] = []

    def measure(name: str, rows: int, floor: str | None = None, *, record: bool = True) -> Stage:
        print(f"bench: {name} ...", file=out, flush=True)
        result, peak = run_child(name, folder, scale)
        stage = Stage(name, result.pop("seconds"), rows, peak, floor, result or None)
        if record:
            stages.append(stage)
        print(f"bench: {name} {stage.seconds:.1f} s, peak {peak / 1024**2:.0f} MiB", file=out)
        return stage

    generated = measure("generate", scale.constituents + scale.memberships + scale.events)
    if generated.detail and generated.detail.get("cached"):
        generated.rows = 0  # nothing was made: the data of an earlier run was reused
    # The floor, the upload and what follows it in turns (after_uploads works on the upload
    # of its turn); each counts by its median, the upload with what follows by the median of
    # the turns' sums.
    big = {"floor_upload": (scale.upload_rows, None), "upload": (scale.upload_rows, "floor_upload"),
           "after_uploads": (scale.memberships, None)}  # fmt: skip
    turns: dict[str, list[Stage]] = {name: [] for name in big}
    for _ in range(scale.upload_runs):
        for name, (rows, floor) in big.items():
            turns[name].append(measure(name, rows, floor, record=False))
    stages.extend(_median_run(measured) for measured in turns.values())
    stages.append(
        _median_run(
            [_together(*turn) for turn in zip(turns["upload"], turns["after_uploads"], strict=True)]
        )
    )
    measure("floor_10k", scale.small_upload_rows)
    # The same upload into a tenth of the membership table: the ratio shows whether a small
    # upload's cost follows the table (10x) or the upload (1x).
    floors = {"upload_10k": "floor_10k", "upload_10k_tenth": None}
    runs: dict[str, list[Stage]] = {name: [] for name in floors}
    for _ in range(SHORT_STAGE_RUNS):
        for name, measured in runs.items():
            measured.append(measure(name, scale.small_upload_rows, floors[name], record=False))
    stages.extend(_median_run(measured) for measured in runs.values())
    small = measure("small_files", scale.small_files * scale.small_file_rows)
    small.detail = {**(small.detail or {}), "per_file_s": small.seconds / scale.small_files}
    for name in LATENCY_LIMITS:
        measure(name, 1)
    by_name = {s.name: s for s in stages}
    report = {
        "scale": scale.as_dict(),
        "generated": generated.detail,
        "machine": machine(),
        "stages": [s.as_dict(by_name) for s in stages],
        "targets": targets(by_name),
    }
    return report


def _together(upload: Stage, after: Stage) -> Stage:
    """One turn's upload and what followed it, as one stage against the floor."""
    return Stage(
        "upload_and_after_uploads",
        upload.seconds + after.seconds,
        upload.rows,
        max(upload.peak_rss, after.peak_rss),
        floor="floor_upload",
    )


def _median_run(runs: list[Stage]) -> Stage:
    """The run of median time, with every run's seconds and the highest peak among them."""
    median = sorted(runs, key=lambda stage: stage.seconds)[len(runs) // 2]
    detail = {**(median.detail or {}), "runs_s": [round(stage.seconds, 3) for stage in runs]}
    peak = max(stage.peak_rss for stage in runs)
    return Stage(median.name, median.seconds, median.rows, peak, median.floor, detail)


def targets(by_name: dict[str, Stage]) -> list[dict]:
    def ratio(stage: str) -> float:
        return by_name[stage].seconds / by_name[by_name[stage].floor].seconds

    pipeline_peak = max(s.peak_rss for s in by_name.values() if s.name not in ("generate",))
    small = by_name["small_files"]
    per_file = small.seconds / small.detail["files"] if small.detail else small.seconds
    table_growth = by_name["upload_10k"].seconds / by_name["upload_10k_tenth"].seconds
    return [
        _target("upload <= 1.5x floor", ratio("upload"), 1.5),
        _target("upload + refresh/exports <= 2x floor", ratio("upload_and_after_uploads"), 2.0),
        _target("peak RSS < 2 GiB (MiB)", pipeline_peak / 1024**2, PEAK_MEMORY_LIMIT / 1024**2),
        _target(
            "10K upload, 10x the membership table: time ratio (1 = upload-bound)",
            table_growth,
            TABLE_GROWTH_LIMIT,
        ),
        _target("small files: seconds per file < 0.2", per_file, PER_FILE_LIMIT),
        *(
            _target(
                f"{name}: one-row file through segpipe run / import dagster",
                by_name[name].detail["vs_import"],
                limit,
            )
            for name, limit in LATENCY_LIMITS.items()
        ),
    ]


def _target(name: str, measured: float, limit: float) -> dict:
    return {
        "target": name,
        "measured": round(measured, 3),
        "limit": limit,
        "met": measured <= limit,
    }


def machine() -> dict:
    import dagster
    import duckdb
    import pandera
    import polars

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "polars": polars.__version__,
        "pandera": pandera.__version__,
        "dagster": dagster.__version__,
    }


def table(report: dict) -> str:
    header = ("stage", "seconds", "rows", "rows/s", "peak RSS MiB", "vs floor")
    lines = [header]
    for s in report["stages"]:
        lines.append(
            (
                s["stage"],
                f"{s['seconds']:.2f}",
                f"{s['rows']:,}",
                f"{s['rows_per_s']:,}" if s["rows_per_s"] else "",
                f"{s['peak_rss_mib']:.0f}",
                f"{s['vs_floor']:.2f}x" if s["vs_floor"] is not None else "",
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in lines]
    text.append("")
    for t in report["targets"]:
        mark = "met" if t["met"] else "MISSED"
        text.append(f"{mark:<7} {t['target']}: {t['measured']} (limit {t['limit']})")
    return "\n".join(text)


def main(scale_name: str, folder: Path, json_path: Path | None, out: TextIO = sys.stdout) -> int:
    report = bench(SCALES[scale_name], folder.resolve(), out)
    print("\n" + table(report), file=out)
    for path in {folder / "bench.json", *([json_path] if json_path else [])}:
        path.write_text(json.dumps(report, indent=2))
        print(f"bench: results written to {path}", file=out)
    return 0
