"""One received file, start to finish: read, validate, resolve, apply in one transaction.

Plain Python over a warehouse connection factory; the Dagster layer (segpipe/defs/uploads)
turns each stage's report into a materialization of that stage's asset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import duckdb
import polars as pl

from segpipe.config import DataDir
from segpipe.exports.cells import neutralized_frame
from segpipe.ingest import dialect as dialects
from segpipe.ingest import report
from segpipe.ingest.errors import UploadHeld, UploadRejected
from segpipe.ingest.filenames import UploadKind, kind_of, printable
from segpipe.ingest.guard import check_cells, inspect_content
from segpipe.ingest.masking import mask_expr
from segpipe.ingest.reader import LINE, read_batches, read_file
from segpipe.ingest.receive import ReceivedFile, archived_file, sha256_of
from segpipe.ingest.validate import OUTCOME, REASON, reject_malformed
from segpipe.kinds import UploadContext, rules_for
from segpipe.kinds.base import VALIDATED_TABLE
from segpipe.warehouse import erasures, uploads
from segpipe.warehouse.guard import removal_limit
from segpipe.warehouse.sql import frame, registered, transaction

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
PREVIEW_ROWS = 5
SUBSCRIBER = UploadKind.SUBSCRIBER_SEGMENT
# Rows validated at a time for kinds that judge rows one by one: bounds the polars memory of a
# big file whatever its size. On the 10M-row bench file, reading and validating peaked at
# 1.9 GiB with 1M-row slices and 1.35 GiB with 250K, in the same time.
CHUNK_ROWS = 250_000
progress = logging.getLogger("segpipe.progress")
# Starts the Failure of a sync the removal guard held (segpipe.warehouse.guard).
HELD_PREFIX = "Held: "
T = TypeVar("T")
_END = object()


class Markdown(str):
    """Metadata text meant to be rendered as Markdown (a table of reasons, a preview)."""


@dataclass
class UploadOutcome:
    upload_id: str
    file_name: str
    status: str  # applied, rejected, held, duplicate, or skipped when it was settled before
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    stages: dict[str, dict] = field(default_factory=dict)  # asset name -> metadata


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def process_upload(
    data: DataDir,
    connect: Connect,
    upload_id: str,
    run_id: str | None = None,
    allow_large_removals: bool = False,
) -> UploadOutcome:
    outcome = _process(data, connect, upload_id, run_id, allow_large_removals)
    # The file's outcome as data on its first stage: what the UI, the warnings and the checks
    # read (a rejection is not a step failure).
    if (raw := outcome.stages.get("raw_upload")) is not None:
        raw["status"] = outcome.status
        if outcome.error:
            raw["problem"] = outcome.error
    return outcome


def _process(data, connect: Connect, upload_id: str, run_id, allow_large_removals: bool):
    received = archived_file(data, upload_id)
    sha256 = sha256_of(received.path)
    facts = {
        "file": received.file_name,
        "sha256": sha256,
        "bytes": received.path.stat().st_size,
        "archive": str(received.path.relative_to(data.root)),
    }
    outcome = UploadOutcome(upload_id, received.file_name, "applied")
    with connect() as con:
        if uploads.status_of(con, upload_id) in ("applied", "duplicate"):
            outcome.status = "skipped"
            return outcome
        try:
            content = inspect_content(received.path, sha256)
        except UploadRejected as error:
            _reject(data, con, received, sha256, error, outcome)
            outcome.stages.setdefault("raw_upload", facts)["status"] = "rejected"
            return outcome
        facts["content_sha256"] = content.sha256
        original, how = _earlier(con, received, sha256, content.sha256)
        if original:
            problem = f"same {how} as upload {original}"
            _record(
                con,
                received,
                sha256,
                kind=None,
                status="duplicate",
                counts={},
                error=problem,
                duplicate_of=original,
            )
            outcome.status, outcome.error = "duplicate", problem
            outcome.stages["raw_upload"] = {
                **facts,
                "status": "duplicate",
                "duplicate_of": original,
            }
            return outcome
        try:
            _apply(data, con, received, facts, outcome, run_id, allow_large_removals)
        except UploadRejected as error:
            _reject(data, con, received, sha256, error, outcome)
            outcome.stages.setdefault("raw_upload", facts)["status"] = outcome.status
    return outcome


def _earlier(con, received: ReceivedFile, sha256: str, content_sha256: str):
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
    """An Attentive file's name carries its delivery (domain, date, part): the same bytes under
    another delivery's name are new news (an unchanged part of today's delivery), not a repeat."""
    try:
        return received.file_name if kind_of(received.file_name) == SUBSCRIBER else None
    except UploadRejected:
        return None


def _apply(data, con, received: ReceivedFile, facts: dict, outcome: UploadOutcome, run_id, forced):
    rules = rules_for(kind_of(received.file_name), received.file_name, data.segments_yaml)
    # Only full-replace deliveries are guarded (segments.yaml is read for them alone).
    limit = None if forced or rules.kind != SUBSCRIBER else removal_limit(data.segments_yaml)

    def on_read(rows: int) -> None:
        _read(outcome, {**facts, "kind": str(rules.kind)}, rows)

    rows_in, dialect = _guarded_validation(con, received, rules, facts, on_read)
    # Before anything shows a row: an erased person's rows never reach a preview.
    erasures.ignore_erased(con, VALIDATED_TABLE)
    validated_counts, validated_reasons = _tally(con, VALIDATED_TABLE)
    refused = rows_in - validated_counts.get("applied", 0)
    outcome.stages["validated_upload"] = {
        "rows_in": rows_in,
        "rows_valid": rows_in - refused,
        "rows_rejected": refused,
        **validated_reasons,
        "preview": _preview(con, VALIDATED_TABLE),
    }
    upload = UploadContext(
        received.upload_id,
        received.file_name,
        _now(),
        run_id,
        removal_limit=limit,
    )
    resolved = rules.resolve(con, VALIDATED_TABLE, upload)  # consumes VALIDATED_TABLE
    resolved_counts, reasons = _tally(con, resolved)
    counts = {f"rows_{k}": v for k, v in resolved_counts.items()}
    counts["rows_in"] = rows_in
    outcome.stages["resolved_upload"] = {**counts, **reasons}
    refused = _refused_lines(con, resolved)
    # The errors file is written (polars, re-reading the file) while the warehouse changes
    # (DuckDB), each on its own core, and is on disk before the upload commits: a refused row
    # is never lost, even if writing its report fails.
    with ThreadPoolExecutor(1, thread_name_prefix="segpipe-errors") as pool:
        report_written = pool.submit(_write_error_report, data, received, rules, dialect, refused)
        with transaction(con):
            rules.apply(con, resolved, upload)
            _record(
                con,
                received,
                facts["sha256"],
                kind=str(rules.kind),
                status="applied",
                counts=counts,
            )
            uploads.record_content(con, received.upload_id, facts["content_sha256"])
            errors_csv = report_written.result()
    outcome.counts = counts
    outcome.stages["applied_upload"] = {
        **counts,
        **reasons,
        "errors_file": errors_csv or "",
        "preview": _preview(con, resolved),
    }
    con.execute(f"DROP TABLE {resolved}")


def _raw_batches(received: ReceivedFile, rules, dialect, lines: pl.Series | None = None):
    """The file's rows as text: in slices when the kind validates row by row, else whole (read
    the same way both times, so a line reads alike for validation and for the errors report);
    only those on `lines` when given, each with the record as received."""
    shape = {"header": rules.header, "columns": rules.columns, "dialect": dialect, "lines": lines}
    if rules.row_by_row:
        return read_batches(received.path, rows=CHUNK_ROWS, **shape)
    return iter([read_file(received.path, **shape)])


def _read(outcome: UploadOutcome, facts: dict, rows_in: int) -> None:
    outcome.stages["raw_upload"] = {**facts, "rows_in": rows_in}


def _guarded_validation(con, received: ReceivedFile, rules, facts: dict, on_read):
    """(rows read, the file's dialect): the dialect detected (added to `facts`, the raw
    upload's metadata, read or rejected), then `_validate_into_table`. Any unexpected error
    reading or validating this one file (a library's parse error, memory) becomes the file's
    rejection: a poison file is set aside with a reason and never blocks the files after it.
    Its message is not passed on: it may quote the file's content."""
    try:
        dialect = dialects.detect(received.path)
        facts.update(dialect.metadata())
        return _validate_into_table(con, received, rules, dialect, on_read), dialect
    except UploadRejected:
        raise
    except Exception as error:
        raise UploadRejected(
            received.file_name,
            f"could not be read or validated ({type(error).__name__}); nothing from it was "
            "applied: check that it is a CSV file of its kind",
        ) from None


def _validate_into_table(con, received: ReceivedFile, rules, dialect, on_read) -> int:
    """Validate the file slice by slice into the temp table VALIDATED_TABLE; rows read.
    `on_read(rows_in)` is called once the whole file has been read.

    The next slice is read and validated (polars) while this one is inserted (DuckDB): the two
    overlap on a second core instead of taking turns."""
    con.execute(f"DROP TABLE IF EXISTS {VALIDATED_TABLE}")
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
                con.execute(f"CREATE TEMP TABLE {VALIDATED_TABLE} AS FROM _validated_slice")
                created = True
            else:
                con.execute(f"INSERT INTO {VALIDATED_TABLE} BY NAME FROM _validated_slice")
    on_read(rows_in)
    if rejected:
        rejected.rows_in = rows_in
        raise rejected
    return rows_in


def _validated_slices(
    received: ReceivedFile, rules, dialect
) -> Iterator[tuple[int, pl.DataFrame | UploadRejected]]:
    """(rows read, their validated frame) per slice of the file; once a slice rejects the whole
    file, (rows read, the rejection) and then only the row counts of the rest."""
    rejection = None
    for raw in _raw_batches(received, rules, dialect):
        if rejection is None:
            try:
                check_cells(received.file_name, raw, LINE)
                yield raw.height, reject_malformed(rules.validate(received.file_name, raw), raw)
                continue
            except UploadRejected as error:
                rejection = error
        yield raw.height, rejection


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """The items of `items`, each next one computed in a background thread while the caller
    works on the current one (at most one item ahead, so memory holds two at a time)."""
    with ThreadPoolExecutor(1, thread_name_prefix="segpipe-read-ahead") as pool:
        pending = pool.submit(next, items, _END)
        while (item := pending.result()) is not _END:
            pending = pool.submit(next, items, _END)
            yield item


def _refused_lines(con, resolved: str) -> pl.DataFrame:
    """`_line`, `_outcome`, `_reason` of the rows rejected or ignored, in line order, and of
    the rows applied with a note a person must read (outcome `applied`, e.g. an opt-in that a
    suppression overrides)."""
    noted = f"{OUTCOME} IS NULL AND {REASON} IS NOT NULL"
    return frame(
        con,
        f"SELECT {LINE}, coalesce({OUTCOME}, 'applied') AS {OUTCOME}, {REASON} FROM {resolved} "
        f"WHERE {OUTCOME} IN ('rejected', 'ignored') OR ({noted}) ORDER BY {LINE}",
    )


def _write_error_report(
    data: DataDir, received: ReceivedFile, rules, dialect, refused: pl.DataFrame
):
    """The errors file of `refused` rows, each with the row as received; its path or None."""
    if not refused.is_empty():
        raw = _raw_batches(received, rules, dialect, refused[LINE])
        refused = report.error_rows(refused, raw)
        refused = report.without_cells(refused, erasures.ERASED_REASON)
    return _write_errors(data, received.upload_id, refused)


def _reject(data, con, received, sha256, error: UploadRejected, outcome: UploadOutcome) -> None:
    """A whole-file rejection: an errors file with the problem, and the uploads row."""
    _write_errors(data, received.upload_id, report.file_error_row(error.problem))
    try:
        kind = str(kind_of(received.file_name))
    except UploadRejected:
        kind = None
    counts = {"rows_in": error.rows_in, "rows_rejected": error.rows_in}
    status = "held" if isinstance(error, UploadHeld) else "rejected"
    _record(con, received, sha256, kind=kind, status=status, counts=counts, error=error.problem)
    outcome.status, outcome.error, outcome.counts = status, error.problem, counts


def _record(con, received: ReceivedFile, sha256: str, **fields) -> None:
    uploads.record(
        con,
        upload_id=received.upload_id,
        file_name=received.file_name,
        sha256=sha256,
        size=received.path.stat().st_size,
        received_at=received.received_at,
        applied_at=_now(),
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


def _tally(con, table: str) -> tuple[dict[str, int], dict[str, Markdown]]:
    """Rows per outcome (None = applied) and the reasons table, from one GROUP BY in SQL over
    the upload's table (one statement, not one for the outcomes and one for the reasons)."""
    grouped = frame(con, f"SELECT {OUTCOME}, {REASON}, count(*) AS len FROM {table} GROUP BY ALL")
    counts = dict.fromkeys(("applied", "rejected", "ignored", "superseded"), 0)
    for outcome, count in grouped.group_by(OUTCOME).agg(pl.col("len").sum()).iter_rows():
        counts[outcome or "applied"] = count
    return counts, _reasons(grouped.filter(pl.col(REASON).is_not_null()))


def _reasons(grouped: pl.DataFrame) -> dict[str, Markdown]:
    """The reasons table of rows counted per `REASON` (`len`), reasons masked."""
    # Reasons quote values (a segment name, an id): masked like every message from the file.
    grouped = grouped.group_by(mask_expr(pl.col(REASON))).agg(pl.col("len").sum())
    # Most common first, then by reason: the order polars' reason_counts gives.
    reasons = dict(grouped.sort("len", REASON, descending=[True, False]).iter_rows())
    if not reasons:
        return {}
    table = pl.DataFrame({"reason": list(reasons), "rows": list(reasons.values())})
    return {"reasons": Markdown(report.markdown_table(table))}


def _preview(con, table: str) -> Markdown:
    """The first accepted rows, emails and phones masked."""
    rows = frame(
        con,
        f"SELECT * FROM {table} WHERE {OUTCOME} IS NULL ORDER BY {LINE} LIMIT {PREVIEW_ROWS}",
    )
    shown = [c for c in rows.columns if not c.startswith("_") or c == "_line"]
    return Markdown(report.markdown_table(report.masked(rows.select(shown))))


def describe(outcome: UploadOutcome) -> str:
    """One line a person reads: file, status, counts or the problem."""
    if outcome.status in ("applied",):
        c = outcome.counts
        detail = (
            f"in {c['rows_in']}  applied {c['rows_applied']}  rejected {c['rows_rejected']}  "
            f"ignored {c['rows_ignored']}  superseded {c['rows_superseded']}"
        )
    else:
        detail = printable(outcome.error or "")
    return f"{printable(outcome.file_name):<48} {outcome.status:<9} {detail}"
