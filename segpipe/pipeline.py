"""One received file, start to finish: read, validate, resolve, apply in one transaction.

Plain Python over the caller's warehouse connection; it returns an UploadReport, which the
Dagster layer (segpipe/defs/uploads) turns into one materialization per Stage reached.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

import duckdb
import polars as pl

from segpipe.config import DataDir
from segpipe.exports.cells import neutralized_frame
from segpipe.ingest import dialect as dialects
from segpipe.ingest import report
from segpipe.ingest.errors import UploadHeld, UploadRejected
from segpipe.ingest.filenames import kind_of
from segpipe.ingest.guard import check_cells, fingerprints
from segpipe.ingest.masking import display_name
from segpipe.ingest.reader import LINE, read_ahead, read_batches, read_file
from segpipe.ingest.receive import ReceivedFile, archived_file
from segpipe.ingest.validate import OUTCOME, REASON, reject_malformed
from segpipe.kinds import RULES, UploadContext, rules_for
from segpipe.vocabulary import RowOutcome, UploadStatus, sql_list
from segpipe.warehouse import erasures, uploads
from segpipe.warehouse.connection import RESOLVE_MEMORY_LIMIT, memory_limit
from segpipe.warehouse.guard import removal_limit
from segpipe.warehouse.scratch import scratches
from segpipe.warehouse.sql import frame, registered, transaction

PREVIEW_ROWS = 5
# Rows validated at a time for kinds that judge rows one by one: bounds the polars memory of a
# big file whatever its size, at no cost in time (README, "Design measurements").
CHUNK_ROWS = 250_000
progress = logging.getLogger("segpipe.progress")


class Stage(StrEnum):
    """The stages of an upload, in order; each value is the name of the stage's asset."""

    RAW = "raw_upload"
    VALIDATED = "validated_upload"
    RESOLVED = "resolved_upload"
    APPLIED = "applied_upload"


@dataclass(frozen=True)
class UploadReport:
    """What became of one file. `stages`: the metadata of each Stage reached, in order (the
    RAW stage carries the `status`, and the `problem` when there is one)."""

    upload_id: str
    file_name: str
    status: str  # applied, rejected, held, duplicate, or skipped when it was settled before
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None
    stages: Mapping[Stage, Mapping] = field(default_factory=dict)


def now() -> datetime:
    """The applying instant: naive UTC, as the warehouse stores it."""
    return datetime.now(UTC).replace(tzinfo=None)


def process_upload(
    data: DataDir,
    con: duckdb.DuckDBPyConnection,
    upload_id: str,
    run_id: str | None = None,
    allow_large_removals: bool = False,
) -> UploadReport:
    """Take archived upload `upload_id` through every stage on `con`; what became of it.

    A file's own problem is its outcome, not an exception: status `rejected` (or `held` by the
    removal guard), its uploads row and errors file written. Raises only what the warehouse
    raises. An upload already applied (or a duplicate) is `skipped`, untouched."""
    received = archived_file(data, upload_id)
    if uploads.status_of(con, upload_id) in (UploadStatus.APPLIED, UploadStatus.DUPLICATE):
        return UploadReport(upload_id, received.file_name, UploadStatus.SKIPPED)
    sha256, content = fingerprints(received.path)
    facts = received_facts(data, received, sha256)
    stages: dict[Stage, dict] = {}
    try:
        if isinstance(content, UploadRejected):
            raise content
        facts["content_sha256"] = content.sha256
        original, how = earlier(con, received, sha256, content.sha256)
        if original:
            problem = f"same {how} as upload {original}"
            _record(
                con,
                received,
                sha256,
                kind=None,
                status=UploadStatus.DUPLICATE,
                counts={},
                error=problem,
                duplicate_of=original,
            )
            stages[Stage.RAW] = {**facts, "duplicate_of": original}
            return report_of(received, UploadStatus.DUPLICATE, stages, {}, problem)
        # The file's validated and resolved rows, dropped whatever becomes of the file.
        with scratches(con, "validated", "resolved") as tables:
            counts = _apply(
                data, con, received, facts, stages, run_id, allow_large_removals, tables
            )
        return report_of(received, UploadStatus.APPLIED, stages, counts)
    except UploadRejected as error:
        status, counts = _reject(data, con, received, sha256, error)
        stages.setdefault(Stage.RAW, facts)
        return report_of(received, status, stages, counts, error.problem)


def received_facts(data: DataDir, received: ReceivedFile, sha256: str) -> dict:
    """What the raw upload's metadata says of the file before it is read. Shown in the Dagster
    UI: the name masked, and the archive folder, whose one file keeps the name as received."""
    return {
        "file": display_name(received.file_name),
        "sha256": sha256,
        "bytes": received.path.stat().st_size,
        "archive": f"{received.path.parent.relative_to(data.root)}/",
    }


def report_of(
    received: ReceivedFile,
    status: str,
    stages: dict[Stage, dict],
    counts: dict[str, int],
    error: str | None = None,
) -> UploadReport:
    """The report, read-only; the file's outcome as data on its first stage (what the UI, the
    warnings and the checks read: a rejection is not a step failure)."""
    # Plain text: Dagster serializes only its own enums in metadata.
    stages[Stage.RAW] = {**stages[Stage.RAW], "status": str(status)}
    if error:
        stages[Stage.RAW]["problem"] = error
    frozen = {stage: MappingProxyType(metadata) for stage, metadata in stages.items()}
    return UploadReport(
        received.upload_id,
        received.file_name,
        status,
        MappingProxyType(counts),
        error,
        MappingProxyType(frozen),
    )


def earlier(con, received: ReceivedFile, sha256: str, content_sha256: str):
    """(the applied upload these bytes, or else this decoded content, repeat; "bytes" or
    "content"), or (None, None) (SPEC 3: a repeat changes nothing)."""
    name = _name_that_matters(received)
    original, same_bytes = uploads.earlier_upload(
        con, received.upload_id, sha256, content_sha256, name
    )
    if original is None:
        return None, None
    if same_bytes:
        return original, "bytes"
    return original, "content (decoded: compression, byte-order mark, line endings aside)"


def _name_that_matters(received: ReceivedFile) -> str | None:
    """A full-replace delivery's name carries the delivery (Attentive: domain, date, part): the
    same bytes under another delivery's name are new news (an unchanged part of today's
    delivery), not a repeat."""
    try:
        rules = RULES.get(kind_of(received.file_name))
    except UploadRejected:
        return None
    return received.file_name if rules and rules.full_replace else None


def _apply(data, con, received: ReceivedFile, facts: dict, stages: dict, run_id, forced, tables):
    """Validate, resolve and apply the file in its one transaction, each stage's metadata put
    in `stages`, its rows in the temp tables `tables` (validated, resolved); the uploads row's
    counts. Raises UploadRejected (nothing applied)."""
    validated, resolved = tables
    rules = rules_for(kind_of(received.file_name), received.file_name, data.segments_yaml)
    # Only full-replace deliveries are guarded (segments.yaml is read for them alone).
    limit = removal_limit(data.segments_yaml) if rules.full_replace and not forced else None

    def on_read(rows_in: int) -> None:
        stages[Stage.RAW] = {**facts, "kind": str(rules.kind), "rows_in": rows_in}

    rows_in, dialect = _guarded_validation(con, received, rules, facts, on_read, validated)
    # Before anything shows a row: an erased person's rows never reach a preview.
    erasures.ignore_erased(con, validated)
    stages[Stage.VALIDATED] = validated_stage(
        rows_in, grouped(con, validated), first_rows(con, validated)
    )
    upload = UploadContext(
        received.upload_id,
        received.file_name,
        now(),
        run_id,
        removal_limit=limit,
    )
    with memory_limit(con, RESOLVE_MEMORY_LIMIT):
        rules.resolve(con, validated, resolved, upload)  # consumes `validated`
    counts, reasons = resolved_counts(rows_in, grouped(con, resolved))
    stages[Stage.RESOLVED] = {**counts, **reasons}
    refused = refused_lines(con, resolved)
    # The errors file is written (polars, re-reading the file) while the warehouse changes
    # (DuckDB), each on its own core, and is on disk before the upload commits: a refused row
    # is never lost, even if writing its report fails.
    with ThreadPoolExecutor(1, thread_name_prefix="segpipe-errors") as pool:
        report_written = pool.submit(write_error_report, data, received, rules, dialect, refused)
        with transaction(con):
            rules.apply(con, resolved, upload)
            record_applied(con, received, facts, str(rules.kind), counts)
            errors_csv = report_written.result()
    stages[Stage.APPLIED] = applied_stage(counts, reasons, errors_csv, first_rows(con, resolved))
    return counts


def validated_stage(rows_in: int, grouped: pl.DataFrame, first_rows: pl.DataFrame) -> dict:
    """The validated upload's metadata: rows in, valid and rejected, the reasons and a preview
    of `first_rows`, from `grouped` (`_outcome`, `_reason`, `len`)."""
    counts, reasons = report.tally(grouped)
    refused = rows_in - counts.get(RowOutcome.APPLIED, 0)
    return {
        "rows_in": rows_in,
        "rows_valid": rows_in - refused,
        "rows_rejected": refused,
        **reasons,
        "preview": report.preview(first_rows),
    }


def resolved_counts(rows_in: int, grouped: pl.DataFrame) -> tuple[dict[str, int], dict]:
    """(the uploads row's counts `rows_<outcome>` and `rows_in`, the reasons) from `grouped`."""
    tallied, reasons = report.tally(grouped)
    counts = {f"rows_{k}": v for k, v in tallied.items()}
    counts["rows_in"] = rows_in
    return counts, reasons


def applied_stage(counts, reasons, errors_csv: str | None, first_rows: pl.DataFrame) -> dict:
    return {
        **counts,
        **reasons,
        "errors_file": errors_csv or "",
        "preview": report.preview(first_rows),
    }


def record_applied(con, received: ReceivedFile, facts: dict, kind: str, counts) -> None:
    """The applied upload's uploads row and content fingerprint, inside its transaction."""
    _record(con, received, facts["sha256"], kind=kind, status=UploadStatus.APPLIED, counts=counts)
    uploads.record_content(con, received.upload_id, facts["content_sha256"])


def _raw_batches(received: ReceivedFile, rules, dialect, lines: pl.Series | None = None):
    """The file's rows as text: in slices when the kind validates row by row, else whole (read
    the same way both times, so a line reads alike for validation and for the errors report);
    only those on `lines` when given, each with the record as received."""
    shape = {"header": rules.header, "columns": rules.columns, "dialect": dialect, "lines": lines}
    if rules.row_by_row:
        return read_batches(received.path, rows=CHUNK_ROWS, **shape)
    return iter([read_file(received.path, **shape)])


def _guarded_validation(con, received: ReceivedFile, rules, facts: dict, on_read, into: str):
    """(rows read, the file's dialect): the dialect detected (added to `facts`, the raw
    upload's metadata, read or rejected), then `_validate_into_table` (`into`). Any unexpected error
    reading or validating this one file (a library's parse error, memory) becomes the file's
    rejection: a poison file is set aside with a reason and never blocks the files after it.
    Its message is not passed on: it may quote the file's content."""
    try:
        dialect = dialects.detect(received.path)
        facts.update(dialect.metadata())
        return _validate_into_table(con, received, rules, dialect, on_read, into), dialect
    except UploadRejected:
        raise
    except Exception as error:
        raise UploadRejected(
            received.file_name,
            f"could not be read or validated ({type(error).__name__}); nothing from it was "
            "applied: check that it is a CSV file of its kind",
        ) from None


def _validate_into_table(con, received: ReceivedFile, rules, dialect, on_read, into: str) -> int:
    """Validate the file slice by slice into the temp table `into`; rows read.
    `on_read(rows_in)` is called once the whole file has been read.

    Three stages overlap instead of taking turns: while this slice is inserted (DuckDB), the
    next one is validated and the one after it read (polars, each in a thread of its own; see
    _validated_slices)."""
    rows_in, rejected, created = 0, None, False
    for height, validated in read_ahead(_validated_slices(received, rules, dialect)):
        rows_in += height
        if isinstance(validated, UploadRejected):
            rejected = validated
        if rejected:
            continue  # the rest of the file is only counted
        # Arrow at polars' newest level keeps its string views: no copy into arrow strings
        # (which DuckDB's own polars source makes), and DuckDB inserts views faster too.
        arrow = validated.to_arrow(compat_level=pl.CompatLevel.newest())
        with registered(con, "_validated_slice", arrow):
            if not created:
                con.execute(f"CREATE TEMP TABLE {into} AS FROM _validated_slice")
                created = True
            else:
                con.execute(f"INSERT INTO {into} BY NAME FROM _validated_slice")
    on_read(rows_in)
    if rejected:
        rejected.rows_in = rows_in
        raise rejected
    return rows_in


def validated_frame(received: ReceivedFile, rules, dialect) -> tuple[int, pl.DataFrame]:
    """(rows read, the validated rows) of a small file in one frame, for a batch; raises
    UploadRejected as validating it into a table would."""
    rows_in, frames, rejection = 0, [], None
    for height, validated in _validated_slices(received, rules, dialect):
        rows_in += height
        if isinstance(validated, UploadRejected):
            rejection = validated
        else:
            frames.append(validated)
    if rejection:
        rejection.rows_in = rows_in
        raise rejection
    return rows_in, pl.concat(frames)


def _validated_slices(
    received: ReceivedFile, rules, dialect
) -> Iterator[tuple[int, pl.DataFrame | UploadRejected]]:
    """(rows read, their validated frame) per slice of the file; once a slice rejects the whole
    file, (rows read, the rejection) and then only the row counts of the rest. The next slice
    is read while this one is validated (README, "Design measurements")."""
    rejection = None
    for raw in read_ahead(_raw_batches(received, rules, dialect)):
        if rejection is None:
            try:
                check_cells(received.file_name, raw, LINE)
                yield raw.height, reject_malformed(rules.validate(received.file_name, raw), raw)
                continue
            except UploadRejected as error:
                rejection = error
        yield raw.height, rejection


def refused_lines(con, resolved: str, by: str | None = None) -> pl.DataFrame:
    """`_line`, `_outcome`, `_reason` of the rows rejected or ignored, in line order, and of
    the rows applied with a note a person must read (outcome `applied`, e.g. an opt-in that a
    suppression overrides); with the column `by` first, and ordered by it, when given."""
    noted = f"{OUTCOME} IS NULL AND {REASON} IS NOT NULL"
    refused = sql_list((RowOutcome.REJECTED, RowOutcome.IGNORED))
    first = f"{by}, " if by else ""
    return frame(
        con,
        f"SELECT {first}{LINE}, coalesce({OUTCOME}, '{RowOutcome.APPLIED}') AS {OUTCOME}, "
        f"{REASON} FROM {resolved} WHERE {OUTCOME} IN {refused} OR ({noted}) "
        f"ORDER BY {first}{LINE}",
    )


def write_error_report(
    data: DataDir, received: ReceivedFile, rules, dialect, refused: pl.DataFrame
):
    """The errors file of `refused` rows, each with the row as received; its path or None."""
    if not refused.is_empty():
        raw = _raw_batches(received, rules, dialect, refused[LINE])
        refused = report.error_rows(refused, raw)
        refused = report.without_cells(refused, erasures.ERASED_REASON)
    return _write_errors(data, received.upload_id, refused)


def _reject(data, con, received, sha256, error: UploadRejected) -> tuple[str, dict[str, int]]:
    """A whole-file rejection: an errors file with the problem, and the uploads row; (status,
    counts)."""
    held = isinstance(error, UploadHeld)
    outcome = RowOutcome.HELD if held else RowOutcome.REJECTED
    _write_errors(data, received.upload_id, report.file_error_row(error.problem, outcome))
    try:
        kind = str(kind_of(received.file_name))
    except UploadRejected:
        kind = None
    counts = {"rows_in": error.rows_in, "rows_rejected": error.rows_in}
    status = UploadStatus.HELD if held else UploadStatus.REJECTED
    _record(con, received, sha256, kind=kind, status=status, counts=counts, error=error.problem)
    return status, counts


def _record(con, received: ReceivedFile, sha256: str, **fields) -> None:
    uploads.record(
        con,
        upload_id=received.upload_id,
        file_name=received.file_name,
        sha256=sha256,
        size=received.path.stat().st_size,
        received_at=received.received_at,
        applied_at=now(),
        **fields,
    )


def _write_errors(data: DataDir, upload_id: str, rows: pl.DataFrame) -> str | None:
    """rejected/<upload_id>.errors.csv when anything was refused; replaces an earlier try's."""
    path = data.errors_csv(upload_id)
    path.unlink(missing_ok=True)
    if rows.is_empty():
        return None
    report.write_atomically(neutralized_frame(rows), path)
    return str(path.relative_to(data.root))


def grouped(con, table: str, by: str | None = None) -> pl.DataFrame:
    """`_outcome`, `_reason`, `len` (rows) of the upload's table: one GROUP BY in SQL gives
    both the outcome counts and the reasons table (report.tally); with the column `by` first
    when given (a batch's files)."""
    first = f"{by}, " if by else ""
    return frame(
        con, f"SELECT {first}{OUTCOME}, {REASON}, count(*) AS len FROM {table} GROUP BY ALL"
    )


def first_rows(con, table: str, by: str | None = None) -> pl.DataFrame:
    """The first PREVIEW_ROWS accepted rows of the upload's table, in line order; of each
    value of the column `by` when given (a batch's files), ordered by it."""
    if by is None:
        return frame(
            con,
            f"SELECT * FROM {table} WHERE {OUTCOME} IS NULL ORDER BY {LINE} LIMIT {PREVIEW_ROWS}",
        )
    return frame(
        con,
        f"SELECT * FROM {table} WHERE {OUTCOME} IS NULL QUALIFY row_number() OVER "
        f"(PARTITION BY {by} ORDER BY {LINE}) <= {PREVIEW_ROWS} ORDER BY {by}, {LINE}",
    )
