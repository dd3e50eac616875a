"""The life of one received file: raw -> validated -> resolved -> applied to the warehouse."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from segpipe.defs.resources import WAREHOUSE_POOL, DataDirResource, Warehouse
from segpipe.defs.uploads.partitions import uploads_partitions
from segpipe.ingest import report
from segpipe.ingest.errors import UploadRejected
from segpipe.ingest.filenames import kind_of
from segpipe.ingest.reader import read_file
from segpipe.ingest.receive import ReceivedFile, archived_file, sha256_of
from segpipe.ingest.validate import OUTCOME, outcome_counts, reason_counts
from segpipe.kinds import KindRules, UploadContext, rules_for
from segpipe.warehouse import uploads
from segpipe.warehouse.sql import transaction

GROUP = "uploads"
OWNERS = ["team:audience-data"]
PREVIEW_ROWS = 5


def _upload_asset(**kwargs):
    return dg.asset(
        partitions_def=uploads_partitions,
        group_name=GROUP,
        owners=OWNERS,
        io_manager_key="staging",
        pool=WAREHOUSE_POOL,
        **kwargs,
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _received(context: dg.AssetExecutionContext, data_dir: DataDirResource) -> ReceivedFile:
    return archived_file(data_dir.paths, context.partition_key)


def _rules(received: ReceivedFile) -> KindRules:
    return rules_for(kind_of(received.file_name), received.file_name)


def _record(warehouse_con, received: ReceivedFile, sha256: str, **fields) -> None:
    uploads.record(
        warehouse_con,
        upload_id=received.upload_id,
        file_name=received.file_name,
        sha256=sha256,
        size=received.path.stat().st_size,
        received_at=received.received_at,
        applied_at=_now(),
        **fields,
    )


def _reject_file(
    data_dir: DataDirResource, warehouse: Warehouse, received: ReceivedFile, error: UploadRejected
) -> dg.Failure:
    """Record a whole-file rejection (uploads row, errors file) and return the Failure to raise."""
    report.write_atomically(
        report.file_error_row(error.problem), data_dir.paths.errors_csv(received.upload_id)
    )
    try:
        kind = str(kind_of(received.file_name))
    except UploadRejected:
        kind = None
    with warehouse.connect() as con:
        _record(
            con,
            received,
            sha256_of(received.path),
            kind=kind,
            status="rejected",
            counts={"rows_in": error.rows_in, "rows_rejected": error.rows_in},
            error=error.problem,
        )
    return dg.Failure(
        description=f"Upload rejected: {error}",
        metadata={"file": received.file_name, "problem": error.problem},
        allow_retries=False,
    )


def _reasons_metadata(frame: pl.DataFrame) -> dict[str, dg.MetadataValue]:
    reasons = reason_counts(frame)
    table = pl.DataFrame({"reason": list(reasons), "rows": list(reasons.values())})
    return {"reasons": dg.MetadataValue.md(report.markdown_table(table))} if reasons else {}


def _preview(frame: pl.DataFrame) -> dg.MetadataValue:
    rows = frame.filter(pl.col(OUTCOME).is_null()) if OUTCOME in frame.columns else frame
    public = [c for c in rows.columns if not c.startswith("_") or c == "_line"]
    return dg.MetadataValue.md(
        report.markdown_table(report.masked(rows.head(PREVIEW_ROWS).select(public)))
    )


@_upload_asset(kinds={"csv"}, output_required=False)
def raw_upload(context: dg.AssetExecutionContext, data_dir: DataDirResource, warehouse: Warehouse):
    """A received file: its archived bytes, checksum and kind, and its rows as text."""
    received = _received(context, data_dir)
    sha256 = sha256_of(received.path)
    facts = {
        "file": received.file_name,
        "sha256": sha256,
        "bytes": received.path.stat().st_size,
        "archive": str(received.path.relative_to(data_dir.paths.root)),
    }
    with warehouse.connect() as con:
        settled = uploads.status_of(con, received.upload_id)
        original = None if settled else uploads.earlier_copy(con, received.upload_id, sha256)
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
    if settled in ("applied", "duplicate") or original:
        status = settled or "duplicate"
        context.log.info(f"{received.file_name}: {status} earlier; nothing changes")
        context.log_event(
            dg.AssetMaterialization(
                "raw_upload",
                partition=context.partition_key,
                metadata={**facts, "status": status, "duplicate_of": original or ""},
            )
        )
        return
    try:
        rules = _rules(received)
        rows = read_file(received.path, header=rules.header, columns=rules.columns)
    except UploadRejected as error:
        raise _reject_file(data_dir, warehouse, received, error) from None
    yield dg.Output(rows, metadata={**facts, "kind": str(rules.kind), "rows_in": rows.height})


@_upload_asset(kinds={"polars", "pandera"})
def validated_upload(
    context: dg.AssetExecutionContext,
    raw_upload: pl.DataFrame,
    data_dir: DataDirResource,
    warehouse: Warehouse,
) -> dg.Output[pl.DataFrame]:
    """Every row in canonical form, checked against its kind's pandera schema."""
    received = _received(context, data_dir)
    try:
        validated = _rules(received).validate(received.file_name, raw_upload)
    except UploadRejected as error:
        error.rows_in = raw_upload.height
        raise _reject_file(data_dir, warehouse, received, error) from None
    rejected = validated.filter(pl.col(OUTCOME).is_not_null()).height
    return dg.Output(
        validated,
        metadata={
            "rows_in": validated.height,
            "rows_valid": validated.height - rejected,
            "rows_rejected": rejected,
            **_reasons_metadata(validated),
            "preview": _preview(validated),
        },
    )


@_upload_asset(kinds={"duckdb"})
def resolved_upload(
    context: dg.AssetExecutionContext,
    validated_upload: pl.DataFrame,
    data_dir: DataDirResource,
    warehouse: Warehouse,
) -> dg.Output[pl.DataFrame]:
    """Every valid row matched to its person and interest, or ignored, rejected or superseded."""
    received = _received(context, data_dir)
    upload = UploadContext(received.upload_id, received.file_name, _now(), context.run.run_id)
    with warehouse.connect() as con:
        resolved = _rules(received).resolve(con, validated_upload, upload)
    counts = outcome_counts(resolved)
    return dg.Output(
        resolved,
        metadata={f"rows_{outcome}": count for outcome, count in counts.items()}
        | _reasons_metadata(resolved),
    )


@_upload_asset(kinds={"duckdb"})
def applied_upload(
    context: dg.AssetExecutionContext,
    raw_upload: pl.DataFrame,
    resolved_upload: pl.DataFrame,
    data_dir: DataDirResource,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """The upload's changes in the warehouse tables, applied in one transaction."""
    received = _received(context, data_dir)
    upload = UploadContext(received.upload_id, received.file_name, _now(), context.run.run_id)
    counts = {f"rows_{k}": v for k, v in outcome_counts(resolved_upload).items()}
    counts["rows_in"] = raw_upload.height
    errors = report.error_rows(raw_upload, resolved_upload)
    errors_csv = data_dir.paths.errors_csv(upload.upload_id)
    errors_csv.unlink(missing_ok=True)
    if errors.height:
        report.write_atomically(errors, errors_csv)
    with warehouse.connect() as con, transaction(con):
        _rules(received).apply(con, resolved_upload, upload)
        _record(
            con,
            received,
            sha256_of(received.path),
            kind=str(_rules(received).kind),
            status="applied",
            counts=counts,
        )
    return dg.MaterializeResult(
        metadata={
            **counts,
            **_reasons_metadata(resolved_upload),
            "errors_file": str(errors_csv.relative_to(data_dir.paths.root))
            if errors.height
            else "",
            "preview": _preview(resolved_upload),
        }
    )
