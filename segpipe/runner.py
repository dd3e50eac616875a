"""`segpipe run` and `segpipe status`: the Dagster assets, driven in-process, with a report."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TextIO

import dagster as dg
import polars as pl

from segpipe.config import DataDir
from segpipe.defs.instance import ensure_warehouse_pool, prepare_home
from segpipe.defs.segments.jobs import AS_OF_TAG
from segpipe.defs.uploads.partitions import uploads_partitions
from segpipe.ingest.receive import archived, receive_inbox
from segpipe.warehouse.connection import connect
from segpipe.warehouse.segments import segment_sizes
from segpipe.warehouse.sql import frame

EXIT_OK, EXIT_FAILED, EXIT_REJECTED = 0, 1, 2
# The run log stays in the Dagster instance; the terminal gets the summary below.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _definitions() -> dg.Definitions:
    from segpipe.definitions import defs

    return defs()


def _settled(data: DataDir) -> pl.DataFrame:
    with connect(data.warehouse) as con:
        return frame(con, "SELECT * FROM uploads ORDER BY upload_id")


def pending_uploads(data: DataDir) -> list[str]:
    """Files from the inbox, and archived ones never settled (a crash, a lost run), in order."""
    receive_inbox(data)
    settled = set(_settled(data)["upload_id"].to_list())
    return [f.upload_id for f in archived(data) if f.upload_id not in settled]


def run_pipeline(data: DataDir, *, as_of: datetime | None, out: TextIO) -> int:
    prepare_home(data)
    with dg.DagsterInstance.get() as instance:
        ensure_warehouse_pool(instance)
        defs = _definitions()
        pending = pending_uploads(data)
        known = set(instance.get_dynamic_partitions(uploads_partitions.name))
        instance.add_dynamic_partitions(
            uploads_partitions.name, [k for k in pending if k not in known]
        )
        print(f"segpipe: {len(pending)} new file(s) in {data.root}", file=out)
        job = defs.resolve_job_def("process_upload")
        failed_runs = []
        for position, upload_id in enumerate(pending, start=1):
            started = time.perf_counter()
            result = job.execute_in_process(
                partition_key=upload_id, instance=instance, raise_on_error=False, run_config=QUIET
            )
            row = _settled(data).filter(pl.col("upload_id") == upload_id)
            status = row["status"][0] if row.height else "failed"
            if not result.success and status != "rejected":
                failed_runs.append(upload_id)
                print(f"  error: {_failure_of(result)}", file=out)
            print(
                f"  [{position}/{len(pending)}] {_file_of(row, upload_id):<48} {status:<9} "
                f"{_counts(row)}  ({time.perf_counter() - started:.2f}s)",
                file=out,
            )
        refresh = defs.resolve_job_def("refresh_segments").execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=QUIET,
            tags={AS_OF_TAG: as_of.isoformat()} if as_of else None,
        )
        if not refresh.success:
            failed_runs.append("segments")
    this_run = _settled(data).filter(pl.col("upload_id").is_in(pending))
    print_summary(data, this_run, out)
    if failed_runs:
        print(
            f"segpipe: run failed for {', '.join(failed_runs)}; see the Dagster run log", file=out
        )
        return EXIT_FAILED
    if (this_run["status"] == "rejected").any():
        print("segpipe: some files were rejected; see above and rejected/", file=out)
        return EXIT_REJECTED
    return EXIT_OK


def _failure_of(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error and error.cause:
                error = error.cause
            return f"{event.step_key}: {error.message.strip()}" if error else event.step_key
    return "run did not finish"


def _file_of(row: pl.DataFrame, upload_id: str) -> str:
    return row["file_name"][0] if row.height else upload_id


def _counts(row: pl.DataFrame) -> str:
    if not row.height:
        return ""
    r = row.row(0, named=True)
    if r["status"] != "applied":
        return r["error"] or ""
    return (
        f"in {r['rows_in']}  applied {r['rows_applied']}  rejected {r['rows_rejected']}  "
        f"ignored {r['rows_ignored']}  superseded {r['rows_superseded']}"
    )


def print_summary(data: DataDir, uploads: pl.DataFrame, out: TextIO) -> None:
    print("\nUploads", file=out)
    if uploads.is_empty():
        print("  (no new files)", file=out)
    for row in uploads.iter_rows(named=True):
        print(
            f"  {row['file_name']:<48} {row['status']:<9} {_counts(pl.DataFrame([row]))}", file=out
        )
        errors = data.errors_csv(row["upload_id"])
        if errors.exists():
            print(f"  {'':<48} report: {errors.relative_to(data.root)}", file=out)
    print_segments(data, out)


def print_segments(data: DataDir, out: TextIO) -> None:
    with connect(data.warehouse) as con:
        sizes = segment_sizes(con)
    print("\nSegments", file=out)
    if sizes.is_empty():
        print("  (none)", file=out)
    for name, kind, members in sizes.select("name", "kind", "members").iter_rows():
        print(f"  {name:<48} {kind:<15} {members:>8}", file=out)


def print_status(data: DataDir, out: TextIO, recent: int = 20) -> None:
    uploads = _settled(data).tail(recent)
    print_summary(data, uploads, out)
