"""One received file, start to finish: read, validate, resolve, apply in one transaction.

Plain Python over a warehouse connection factory; the Dagster layer (segpipe/defs/uploads)
turns each stage's report into a materialization of that stage's asset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import polars as pl

from segpipe.config import DataDir
from segpipe.ingest import report
from segpipe.ingest.errors import UploadRejected
from segpipe.ingest.filenames import UploadKind, kind_of
from segpipe.ingest.reader import read_file
from segpipe.ingest.receive import ReceivedFile, archived_file, sha256_of
from segpipe.ingest.validate import OUTCOME, outcome_counts, reason_counts, reject_malformed
from segpipe.kinds import UploadContext, rules_for
from segpipe.warehouse import uploads
from segpipe.warehouse.sql import transaction

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
PREVIEW_ROWS = 5
SUBSCRIBER = UploadKind.SUBSCRIBER_SEGMENT
progress = logging.getLogger("segpipe.progress")
# Starts the Failure a run raises after applying a batch in which some files were rejected.
REJECTED_PREFIX = "Rejected: "


class Markdown(str):
    """Metadata text meant to be rendered as Markdown (a table of reasons, a preview)."""


@dataclass
class UploadOutcome:
    upload_id: str
    file_name: str
    status: str  # applied, rejected, duplicate, or skipped when it was settled before
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    stages: dict[str, dict] = field(default_factory=dict)  # asset name -> metadata


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def process_upload(
    data: DataDir, connect: Connect, upload_id: str, run_id: str | None = None
) -> UploadOutcome:
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
        original = uploads.earlier_copy(con, upload_id, sha256, _name_that_matters(received))
        if original:
            _record(
                con,
                received,
                sha256,
                kind=None,
                status="duplicate",
                counts={},
                error=f"same bytes as upload {original}",
                duplicate_of=original,
            )
            outcome.status, outcome.error = "duplicate", f"same bytes as upload {original}"
            outcome.stages["raw_upload"] = {
                **facts,
                "status": "duplicate",
                "duplicate_of": original,
            }
            return outcome
        try:
            _apply(data, con, received, facts, outcome, run_id)
        except UploadRejected as error:
            _reject(data, con, received, sha256, error, outcome)
            outcome.stages.setdefault("raw_upload", facts)["status"] = "rejected"
    return outcome


def _name_that_matters(received: ReceivedFile) -> str | None:
    """An Attentive file's name carries its delivery (domain, date, part): the same bytes under
    another delivery's name are new news (an unchanged part of today's delivery), not a repeat."""
    try:
        return received.file_name if kind_of(received.file_name) == SUBSCRIBER else None
    except UploadRejected:
        return None


def _apply(data, con, received: ReceivedFile, facts: dict, outcome: UploadOutcome, run_id):
    rules = rules_for(kind_of(received.file_name), received.file_name)
    raw = read_file(received.path, header=rules.header, columns=rules.columns)
    outcome.stages["raw_upload"] = {**facts, "kind": str(rules.kind), "rows_in": raw.height}
    try:
        validated = reject_malformed(rules.validate(received.file_name, raw), raw)
    except UploadRejected as error:
        error.rows_in = raw.height
        raise
    refused = validated.filter(pl.col(OUTCOME).is_not_null()).height
    outcome.stages["validated_upload"] = {
        "rows_in": validated.height,
        "rows_valid": validated.height - refused,
        "rows_rejected": refused,
        **_reasons(validated),
        "preview": _preview(validated),
    }
    upload = UploadContext(received.upload_id, received.file_name, _now(), run_id)
    resolved = rules.resolve(con, validated, upload)
    counts = {f"rows_{k}": v for k, v in outcome_counts(resolved).items()}
    counts["rows_in"] = raw.height
    outcome.stages["resolved_upload"] = {**counts, **_reasons(resolved)}
    errors_csv = _write_errors(data, received.upload_id, report.error_rows(raw, resolved))
    with transaction(con):
        rules.apply(con, resolved, upload)
        _record(
            con, received, facts["sha256"], kind=str(rules.kind), status="applied", counts=counts
        )
    outcome.counts = counts
    outcome.stages["applied_upload"] = {
        **counts,
        **_reasons(resolved),
        "errors_file": errors_csv or "",
        "preview": _preview(resolved),
    }


def _reject(data, con, received, sha256, error: UploadRejected, outcome: UploadOutcome) -> None:
    """A whole-file rejection: an errors file with the problem, and the uploads row."""
    _write_errors(data, received.upload_id, report.file_error_row(error.problem))
    try:
        kind = str(kind_of(received.file_name))
    except UploadRejected:
        kind = None
    counts = {"rows_in": error.rows_in, "rows_rejected": error.rows_in}
    _record(con, received, sha256, kind=kind, status="rejected", counts=counts, error=error.problem)
    outcome.status, outcome.error, outcome.counts = "rejected", error.problem, counts


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
    report.write_atomically(rows, path)
    return str(path.relative_to(data.root))


def _reasons(frame: pl.DataFrame) -> dict[str, Markdown]:
    reasons = reason_counts(frame)
    if not reasons:
        return {}
    table = pl.DataFrame({"reason": list(reasons), "rows": list(reasons.values())})
    return {"reasons": Markdown(report.markdown_table(table))}


def _preview(frame: pl.DataFrame) -> Markdown:
    """The first accepted rows, emails and phones masked."""
    rows = frame.filter(pl.col(OUTCOME).is_null()).head(PREVIEW_ROWS)
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
        detail = outcome.error or ""
    return f"{outcome.file_name:<48} {outcome.status:<9} {detail}"
