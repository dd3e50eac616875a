"""Many small files of one kind resolved and applied together (SPEC 9: 1,000 small files in
one run, each under 0.2 s).

A small file's own work (reading, validating, its reports) is little; what it costs is the
fixed price of each warehouse statement, some of which read the 50M-row membership table. So
consecutive small files of a kind that has BatchRules are each read, validated and checked for
repeats on their own, then resolved, applied and committed together: one lookup of the big
table for the batch. Each file keeps everything it would have alone: its uploads row, counts,
reasons, previews and errors file, and its changes recorded under its own upload id (history,
before-images), so the warehouse ends exactly as if the files had been applied in turn
(`segpipe_tests/test_batch.py` compares the two). The batch is one transaction: its files apply
together or not at all, never in part.

Any file that is not plainly good (settled before, a repeat, rejected whole, too big, or of a
kind applied alone) ends the batch and takes the one-file path (pipeline.process_upload), which
gives it its outcome. A batch that fails for any reason is applied again one file at a time.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import duckdb
import polars as pl

from segpipe.config import DataDir
from segpipe.ingest import dialect as dialects
from segpipe.ingest.errors import UploadRejected
from segpipe.ingest.filenames import kind_of
from segpipe.ingest.guard import fingerprints
from segpipe.ingest.receive import ReceivedFile, archived_file
from segpipe.kinds import KindRules, rules_for
from segpipe.pipeline import (
    Stage,
    UploadReport,
    applied_stage,
    earlier,
    first_rows,
    grouped,
    now,
    process_upload,
    received_facts,
    record_applied,
    refused_lines,
    report_of,
    resolved_counts,
    validated_frame,
    validated_stage,
    write_error_report,
)
from segpipe.vocabulary import UploadStatus
from segpipe.warehouse import erasures, uploads
from segpipe.warehouse.scratch import scratches
from segpipe.warehouse.sql import registered, transaction
from segpipe.warehouse.uploads import BATCH_FILE, UploadContext

# Files resolved and applied together at most, and the size of a file that may join a batch
# (bigger ones take the one-file path, which streams them). A batch also ends once it holds
# BATCH_ROWS rows: its validated rows stay in memory until it applies, and up to that many the
# memberships lookup reads only the row groups of the batch's people (interests.FEW_ROWS).
BATCH_FILES = 100
BATCH_ROWS = 100_000
SMALL_FILE_BYTES = 1 << 20
log = logging.getLogger("segpipe.progress")


@dataclass
class _Pending:
    """A file read and validated, waiting for its batch to apply."""

    received: ReceivedFile
    rules: KindRules
    facts: dict
    dialect: dialects.Dialect
    rows_in: int
    rows: pl.DataFrame


def process_uploads(
    data: DataDir,
    con: duckdb.DuckDBPyConnection,
    upload_ids: Iterable[str],
    run_id: str | None = None,
    allow_large_removals: bool = False,
) -> Iterator[UploadReport]:
    """What became of each of `upload_ids`, in their order: pipeline.process_upload's report
    for each, small files of a kind with BatchRules applied in batches. Raises only what the
    warehouse raises."""
    waiting, batch = deque(upload_ids), []
    while waiting or batch:
        if _full(batch) or not waiting:
            # Applying a batch may put files back at the front of `waiting`.
            yield from _applied(data, con, batch, run_id, waiting, allow_large_removals)
            batch = []
            continue
        pending = _readied(data, con, waiting[0], batch)
        if pending is not None:
            batch.append(pending)
            waiting.popleft()
        elif batch:
            # The batch first; then the file is looked at again, by itself.
            yield from _applied(data, con, batch, run_id, waiting, allow_large_removals)
            batch = []
        else:
            yield process_upload(data, con, waiting.popleft(), run_id, allow_large_removals)


def _full(batch: list[_Pending]) -> bool:
    return len(batch) >= BATCH_FILES or sum(p.rows_in for p in batch) >= BATCH_ROWS


def _readied(data: DataDir, con, upload_id: str, batch: list[_Pending]) -> _Pending | None:
    """The file read and validated for a batch after `batch` (of its kind), or None when it
    takes the one-file path: not plainly good, or a batch cannot take it."""
    received = archived_file(data, upload_id)
    if received.path.stat().st_size > SMALL_FILE_BYTES:
        return None
    try:
        rules = rules_for(kind_of(received.file_name), received.file_name, data.segments_yaml)
        if rules.batch is None or (batch and batch[0].rules.kind != rules.kind):
            return None
        if uploads.status_of(con, upload_id) is not None:
            return None  # settled or tried before: the one-file path says what became of it
        sha256, content = fingerprints(received.path)
        if isinstance(content, UploadRejected):
            return None
        facts = received_facts(data, received, sha256)
        facts["content_sha256"] = content.sha256
        if _repeats(con, received, facts, batch):
            return None
        dialect = dialects.detect(received.path)
        facts.update(dialect.metadata())
        rows_in, rows = validated_frame(received, rules, dialect)
    except Exception:  # the one-file path reads it again and gives the file its outcome
        return None
    facts.update(kind=str(rules.kind), rows_in=rows_in)
    return _Pending(received, rules, facts, dialect, rows_in, rows)


def _repeats(con, received: ReceivedFile, facts: dict, batch: list[_Pending]) -> bool:
    """The file repeats an applied upload or a file of the batch (SPEC 3)."""
    sha256, content = facts["sha256"], facts["content_sha256"]
    if any(
        pending.facts["sha256"] == sha256 or pending.facts["content_sha256"] == content
        for pending in batch
    ):
        return True
    return earlier(con, received, sha256, content)[0] is not None


def _applied(
    data: DataDir, con, batch: list[_Pending], run_id, waiting: deque, forced: bool
) -> list:
    """The batch resolved and applied in one transaction; each file's report. Files after the
    first that creates something go back to the front of `waiting`. A batch that fails is
    applied one file at a time instead."""
    if not batch:
        return []
    try:
        reports, left = _apply_batch(data, con, batch, run_id)
    except Exception as error:
        log.warning(
            "%d files could not be applied together (%s); applying them one at a time",
            len(batch),
            type(error).__name__,
        )
        return [process_upload(data, con, p.received.upload_id, run_id, forced) for p in batch]
    waiting.extendleft(reversed([pending.received.upload_id for pending in left]))
    return reports


def _apply_batch(data: DataDir, con, batch: list[_Pending], run_id):
    """(the reports of the files applied, the files left for another batch)."""
    rules = batch[0].rules.batch
    with scratches(con, "batch_validated", "batch_resolved") as (validated, resolved):
        rows = pl.concat(
            [
                p.rows.with_columns(pl.lit(n, pl.Int64).alias(BATCH_FILE))
                for n, p in enumerate(batch)
            ],
            how="diagonal_relaxed",
        )
        with registered(con, f"{validated}_frame", rows):
            con.execute(f"CREATE TEMP TABLE {validated} AS FROM {validated}_frame")
        erasures.ignore_erased(con, validated)
        checked = _by_file(con, validated, batch)
        rules.resolve(con, validated, resolved)  # consumes `validated`
        last = rules.first_creating(con, resolved)
        if last is not None and last < len(batch) - 1:
            con.execute(f"DELETE FROM {resolved} WHERE {BATCH_FILE} > {int(last)}")
            batch, left = batch[: last + 1], batch[last + 1 :]
        else:
            left = []
        return _applied_batch(data, con, batch, run_id, resolved, checked), left


def _by_file(con, table: str, batch: list[_Pending]) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """Per file of the batch: (`_outcome`, `_reason`, `len` of its rows in `table`, its first
    accepted rows), what pipeline's stages read of one file's table."""
    counted, first = grouped(con, table, BATCH_FILE), first_rows(con, table, BATCH_FILE)
    return [
        (_of_file(counted, n).drop(BATCH_FILE), _of_file(first, n).drop(BATCH_FILE))
        for n in range(len(batch))
    ]


def _of_file(rows: pl.DataFrame, number: int) -> pl.DataFrame:
    return rows.filter(pl.col(BATCH_FILE) == number)


def _applied_batch(data, con, batch: list[_Pending], run_id, resolved: str, checked) -> list:
    """Apply the resolved rows of `batch` and record each file, in one transaction."""
    start = now()
    # Each file its own instant, in order: history and point-in-time membership tell them apart.
    contexts = [
        UploadContext(
            p.received.upload_id,
            p.received.file_name,
            start + timedelta(microseconds=n),
            run_id,
            removal_limit=None,
        )
        for n, p in enumerate(batch)
    ]
    outcomes = _by_file(con, resolved, batch)
    refused = refused_lines(con, resolved, by=BATCH_FILE)
    stages, counts = [], []
    for n, pending in enumerate(batch):
        file_counts, reasons = resolved_counts(pending.rows_in, outcomes[n][0])
        counts.append((file_counts, reasons))
        stages.append(
            {
                Stage.RAW: pending.facts,
                Stage.VALIDATED: validated_stage(pending.rows_in, *checked[n]),
                Stage.RESOLVED: {**file_counts, **reasons},
            }
        )
    with ThreadPoolExecutor(1, thread_name_prefix="segpipe-errors") as pool:
        written = [
            pool.submit(
                write_error_report,
                data,
                p.received,
                p.rules,
                p.dialect,
                _of_file(refused, n).drop(BATCH_FILE),
            )
            for n, p in enumerate(batch)
        ]
        with transaction(con):
            batch[0].rules.batch.apply(con, resolved, contexts)
            for pending, (file_counts, _) in zip(batch, counts, strict=True):
                record_applied(
                    con, pending.received, pending.facts, str(pending.rules.kind), file_counts
                )
            errors_files = [done.result() for done in written]
    reports = []
    for n, pending in enumerate(batch):
        file_counts, reasons = counts[n]
        stages[n][Stage.APPLIED] = applied_stage(
            file_counts, reasons, errors_files[n], outcomes[n][1]
        )
        reports.append(report_of(pending.received, UploadStatus.APPLIED, stages[n], file_counts))
    return reports
