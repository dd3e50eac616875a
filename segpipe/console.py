"""What `segpipe run`, `segpipe run --dry-run` and `segpipe status` print about files, segments
and exports.

The uploads (the progress line of each file, the summary), the segments, the exports and a dry
run's effect; the Dagster run log keeps the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

import polars as pl

from segpipe.config import DataDir
from segpipe.exports.report import latest_syncs
from segpipe.ingest.filenames import printable
from segpipe.ingest.masking import display_name, mask
from segpipe.vocabulary import UploadStatus
from segpipe.warehouse.connection import connect
from segpipe.warehouse.guard import FORCE_FLAG, SETTING
from segpipe.warehouse.segments import segment_sizes

if TYPE_CHECKING:
    from segpipe.pipeline import UploadReport


def upload_line(file_name: str, status: str, counts: Mapping, error: str | None) -> str:
    """One line a person reads: file, status, the row counts when applied or else the problem.
    `counts`: rows_in, rows_applied, rows_rejected, rows_ignored, rows_superseded. The name as
    received (`file_name`), shown by its display name."""
    if status == UploadStatus.APPLIED:
        detail = (
            f"in {counts['rows_in']}  applied {counts['rows_applied']}  "
            f"rejected {counts['rows_rejected']}  ignored {counts['rows_ignored']}  "
            f"superseded {counts['rows_superseded']}"
        )
    else:
        detail = printable(error or "")
    return f"{printable(display_name(file_name)):<48} {status:<9} {detail}"


def describe(report: UploadReport) -> str:
    """The progress line of a file just processed (upload_line)."""
    return upload_line(report.file_name, report.status, report.counts, report.error)


def print_summary(
    data: DataDir,
    uploads: pl.DataFrame,
    out: TextIO,
    ids: bool = False,
    read_only: bool = False,
    hidden: int = 0,
) -> None:
    """The uploads (rows of the uploads table), then the segments and the exports; with `ids`,
    each upload's id (what `segpipe undo` takes); `read_only` opens the warehouse so. `hidden`:
    how many earlier uploads `segpipe status` leaves out (said first, where they would be)."""
    print("\nUploads", file=out)
    if hidden:
        print(
            f"  ({hidden} earlier upload(s) not shown; `segpipe status --limit 0` lists all)",
            file=out,
        )
    if uploads.is_empty():
        print("  (no new files)", file=out)
    for row in uploads.iter_rows(named=True):
        print(f"  {upload_line(row['file_name'], row['status'], row, row['error'])}", file=out)
        if ids:
            print(f"  {'':<48} upload_id: {row['upload_id']}", file=out)
        errors = data.errors_csv(row["upload_id"])
        if errors.exists():
            print(f"  {'':<48} report: {errors.relative_to(data.root)}", file=out)
    print_segments(data, out, read_only)


def print_refused(uploads: pl.DataFrame, out: TextIO) -> bool:
    """The closing lines of a run about its files refused whole (rows of the uploads table):
    a rejected file is for its sender to fix, a held one waits for a person to allow it, so
    each is said as what it is. True when there was any."""
    rejected = uploads.filter(pl.col("status") == UploadStatus.REJECTED).height
    held = uploads.filter(pl.col("status") == UploadStatus.HELD).height
    if rejected:
        print(f"segpipe: {rejected} file(s) rejected; see above and rejected/", file=out)
    if held:
        print(
            f"segpipe: {held} file(s) held by the removal guard, nothing of them applied (see "
            f"above); every run tries them again: if the removals are intended, run "
            f"`segpipe run {FORCE_FLAG}` (or raise {SETTING} in segments.yaml)",
            file=out,
        )
    return bool(rejected or held)


def print_segments(data: DataDir, out: TextIO, read_only: bool = False) -> None:
    """Each segment's size, then each export's latest sync."""
    with connect(data.warehouse, read_only=read_only) as con:
        sizes = segment_sizes(con)
        syncs = latest_syncs(con)
    print("\nSegments", file=out)
    if sizes.is_empty():
        print("  (none)", file=out)
    for label, kind, members in sizes.select("label", "kind", "members").iter_rows():
        print(f"  {label:<48} {kind:<15} {members:>8}", file=out)
    print_exports(syncs, out)


def print_exports(syncs: pl.DataFrame, out: TextIO) -> None:
    """`syncs`: the latest sync of each destination and segment (exports.report.latest_syncs)."""
    print("\nExports (latest sync of each destination and segment)", file=out)
    if syncs.is_empty():
        print("  (none: no destinations in segments.yaml, or not synced yet)", file=out)
    for row in syncs.iter_rows(named=True):
        label = f"{row['destination']} / {mask(row['segment'])}"
        skipped = f"  skipped (no key) {row['skipped_no_key']}" if row["skipped_no_key"] else ""
        if row["skipped_no_consent"]:
            skipped += f"  skipped (no consent) {row['skipped_no_consent']}"
        print(
            f"  {label:<48} members {row['members']:>6}  adds {row['adds']:>6}  "
            f"removes {row['removes']:>6}{skipped}",
            file=out,
        )


def _changes_line(changes: dict, labels: tuple[str, str]) -> list[str]:
    """`name: +adds -removes` per changed segment or interest, the name masked: a manual
    segment's name comes from a file and may carry an address or a number."""
    return [
        f"{mask(name)}: +{counts[labels[0]]} -{counts[labels[1]]}"
        for name, counts in changes.items()
        if counts[labels[0]] or counts[labels[1]]
    ]


def print_effect(effect: dict, out: TextIO) -> None:
    """What `segpipe run --dry-run` says it would do: a line per file (with its rows, people,
    opt-ins/outs and segment changes when it applies), the refresh, each export, and the
    total. `effect`: dry_run.run_effect's dict. Names from files are masked."""
    print("\nWould do (dry run: nothing was changed)", file=out)
    for f in effect["files"]:
        print(f"  {f['file']:<48} {f['status']:<9} {f['error'] or ''}", file=out)
        if f["status"] != UploadStatus.APPLIED:
            continue
        print(
            f"      rows in {f['rows_in']}  applied {f['rows_applied']}  rejected "
            f"{f['rows_rejected']}  ignored {f['rows_ignored']}  superseded "
            f"{f['rows_superseded']};  people created {f['people_created']}  updated "
            f"{f['people_updated']}",
            file=out,
        )
        _print_details(f, out)
    if effect["refresh"]:
        lines = _changes_line(effect["refresh"], ("adds", "removes"))
        print(f"  segment refresh: {'; '.join(lines) or 'no change'}", file=out)
    for destination, segments in effect["destinations"].items():
        lines = _changes_line(segments, ("adds", "removes"))
        print(f"  export {destination}: {'; '.join(lines) or 'no change'}", file=out)
    total = effect["total"]
    by_status = ", ".join(f"{n} {status}" for status, n in total["files_by_status"].items())
    by_status = f" ({by_status})" if by_status else ""
    print(
        f"\nTotal: {total['files']} file(s){by_status}; people created "
        f"{total.get('people_created', 0)}, updated {total.get('people_updated', 0)}; rows "
        f"rejected {total.get('rows_rejected', 0)}, ignored {total.get('rows_ignored', 0)}",
        file=out,
    )
    _print_details(total, out)
    for destination, counts in total["destinations"].items():
        print(f"      export {destination}: +{counts['adds']} -{counts['removes']}", file=out)


def _print_details(effect: dict, out: TextIO) -> None:
    if lines := _changes_line(effect["interests"], ("opt_ins", "opt_outs")):
        print(f"      opt-ins/outs: {'; '.join(lines)}", file=out)
    if lines := _changes_line(effect["segments"], ("adds", "removes")):
        print(f"      segments: {'; '.join(lines)}", file=out)
    for reason, rows in effect["refused"].items():
        print(f"      {rows} row(s) {reason}", file=out)
