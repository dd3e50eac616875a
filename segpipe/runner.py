"""`segpipe run` and `segpipe status`: the Dagster assets, driven in-process, with a report."""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from typing import TextIO

import dagster as dg
import polars as pl

from segpipe.cli import EXIT_FAILED, EXIT_OK, EXIT_REJECTED
from segpipe.config import DATA_DIR_ENV, DataDir
from segpipe.defs.exports.partitions import current_pairs, register_pairs
from segpipe.defs.instance import ensure_warehouse_pool, prepare_home
from segpipe.defs.segments.jobs import AS_OF_TAG
from segpipe.defs.uploads.jobs import range_tags
from segpipe.defs.uploads.partitions import uploads_partitions
from segpipe.exports.destinations import DestinationError
from segpipe.exports.report import latest_syncs, print_exports
from segpipe.ingest.receive import archived, receive_inbox
from segpipe.pipeline import REJECTED_PREFIX, progress
from segpipe.warehouse.connection import connect
from segpipe.warehouse.segments import segment_sizes
from segpipe.warehouse.sql import frame

# The run log stays in the Dagster instance; the terminal gets progress lines and a summary.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _definitions() -> dg.Definitions:
    from segpipe.definitions import defs

    return defs()


def uploads_table(data: DataDir) -> pl.DataFrame:
    with connect(data.warehouse) as con:
        return frame(con, "SELECT * FROM uploads ORDER BY upload_id")


def pending_uploads(data: DataDir) -> list[str]:
    """Files from the inbox, and archived ones never settled (a crash, a lost run), in order."""
    receive_inbox(data)
    settled = set(uploads_table(data)["upload_id"].to_list())
    return [f.upload_id for f in archived(data) if f.upload_id not in settled]


def _register(instance: dg.DagsterInstance, pending: list[str]) -> tuple[str, str]:
    """Add the partitions; the range from the first to the last pending one, in partition
    order (settled uploads inside it are skipped by the step)."""
    known = instance.get_dynamic_partitions(uploads_partitions.name)
    instance.add_dynamic_partitions(
        uploads_partitions.name, [k for k in pending if k not in set(known)]
    )
    ordered = instance.get_dynamic_partitions(uploads_partitions.name)
    positions = sorted(ordered.index(k) for k in pending)
    return ordered[positions[0]], ordered[positions[-1]]


def _show_progress(out: TextIO) -> logging.Handler:
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    return handler


def run_pipeline(data: DataDir, *, as_of: datetime | None, out: TextIO = sys.stdout) -> int:
    os.environ[DATA_DIR_ENV] = str(data.root)  # the code location reads its data dir from here
    prepare_home(data)
    handler = _show_progress(out)
    failures = []
    try:
        with dg.DagsterInstance.get() as instance:
            ensure_warehouse_pool(instance)
            defs = _definitions()
            pending = pending_uploads(data)
            print(f"segpipe: {len(pending)} new file(s) in {data.root}", file=out)
            if pending:
                tags = range_tags(*_register(instance, pending))
                failures += _run_job(defs, "process_upload", instance, tags)
            as_of_tags = {AS_OF_TAG: as_of.isoformat()} if as_of else None
            refreshed = _execute(defs, "refresh_segments", instance, as_of_tags)
            failures += _unexpected_failures(refreshed)
            if not failures:  # exports follow fresh segments, never stale ones
                failures += sync_exports(defs, instance, data)
            # A broken rule kept its segment as it was; the others refreshed and exported.
            failures += _broken_rules(refreshed)
    finally:
        progress.removeHandler(handler)
    this_run = uploads_table(data).filter(pl.col("upload_id").is_in(pending))
    print_summary(data, this_run, out)
    for failure in failures:
        print(f"segpipe: run failed: {failure}", file=out)
    if failures:
        return EXIT_FAILED
    if (this_run["status"] == "rejected").any():
        print("segpipe: some files were rejected; see above and rejected/", file=out)
        return EXIT_REJECTED
    return EXIT_OK


def sync_exports(defs: dg.Definitions, instance: dg.DagsterInstance, data: DataDir) -> list[str]:
    """One run of `sync_destinations` over every configured destination and segment."""
    try:
        with connect(data.warehouse) as con:
            tags = register_pairs(instance, current_pairs(con, data))
    except DestinationError as error:
        return [f"{data.segments_yaml.name}: {error}"]
    if tags is None:
        return []
    return _run_job(defs, "sync_destinations", instance, tags)


def _run_job(
    defs: dg.Definitions, name: str, instance: dg.DagsterInstance, tags: dict | None
) -> list[str]:
    """Run job `name` in this process on `instance`; the unexpected failures it had."""
    return _unexpected_failures(_execute(defs, name, instance, tags))


def _execute(
    defs: dg.Definitions, name: str, instance: dg.DagsterInstance, tags: dict | None
) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(name).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET, tags=tags
    )


def _broken_rules(result: dg.ExecuteInProcessResult) -> list[str]:
    """The segment rules the segment_rules_evaluate check found broken in this refresh."""
    return [
        f"segments.yaml rules not evaluated (those segments kept their members): "
        f"{evaluation.description}"
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == "segment_rules_evaluate" and not evaluation.passed
    ]


def _unexpected_failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """Step failures other than the Failure that reports rejected files."""
    found = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        failure = event.step_failure_data
        if failure.user_failure_data and REJECTED_PREFIX in (
            failure.user_failure_data.description or ""
        ):
            continue
        error = failure.error
        while error and error.cause:
            error = error.cause
        found.append(f"{event.step_key}: {error.message.strip() if error else 'failed'}")
    if not result.success and not found and not any(e.is_step_failure for e in result.all_events):
        found.append("run did not finish")
    return found


def _counts(row: dict) -> str:
    if row["status"] != "applied":
        return row["error"] or ""
    return (
        f"in {row['rows_in']}  applied {row['rows_applied']}  rejected {row['rows_rejected']}  "
        f"ignored {row['rows_ignored']}  superseded {row['rows_superseded']}"
    )


def print_summary(data: DataDir, uploads: pl.DataFrame, out: TextIO) -> None:
    print("\nUploads", file=out)
    if uploads.is_empty():
        print("  (no new files)", file=out)
    for row in uploads.iter_rows(named=True):
        print(f"  {row['file_name']:<48} {row['status']:<9} {_counts(row)}", file=out)
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
    for name, kind, members, domain in sizes.select(
        "name", "kind", "members", "domain"
    ).iter_rows():
        shown = f"{name} ({domain})" if domain else name  # a subscriber segment's domain
        print(f"  {shown:<48} {kind:<15} {members:>8}", file=out)
    with connect(data.warehouse) as con:
        print_exports(latest_syncs(con), out)


def print_status(data: DataDir, out: TextIO, recent: int = 20) -> None:
    print_summary(data, uploads_table(data).tail(recent), out)
