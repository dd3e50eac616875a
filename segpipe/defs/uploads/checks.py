"""Checks on `applied_upload`, evaluated by the upload step itself at the end of each batch.

They are check specs of the `process_uploads` multi-asset, not checks of their own: that step
materializes its partitions as events (one per file and stage) and yields no output, so a
separate check would be skipped; and it holds the warehouse connection, so they cost no extra
step, pool wait or connection. A rejected file no longer fails the step (it is an outcome, in
its partition's `raw_upload` metadata), so they run after every batch. `upload_counts_add_up`
and `subscriber_files_are_never_mixed` read whole tables: one evaluation covers every upload
ever applied. None of them is blocking: nothing downstream runs in the upload job.
"""

import dagster as dg
import polars as pl

from segpipe.config import DataDir
from segpipe.defs.common import APPLIED_UPLOAD
from segpipe.ingest.masking import display_name, display_name_expr
from segpipe.ingest.receive import archived_file
from segpipe.ingest.report import markdown_table
from segpipe.kinds.subscriber import identifier_kinds
from segpipe.vocabulary import UploadStatus
from segpipe.warehouse.sql import frame

FILES_APPLIED = "files_applied"
COUNTS_ADD_UP = "upload_counts_add_up"
NEVER_MIXED = "subscriber_files_are_never_mixed"

# Uploads whose counts do not add up: rows in = applied + rejected + ignored + superseded.
UNBALANCED_UPLOADS = f"""
SELECT upload_id, file_name, rows_in,
       coalesce(rows_applied, 0) + coalesce(rows_rejected, 0) + coalesce(rows_ignored, 0)
         + coalesce(rows_superseded, 0) AS rows_accounted
FROM uploads
WHERE status = '{UploadStatus.APPLIED}'
  AND rows_in IS DISTINCT FROM coalesce(rows_applied, 0) + coalesce(rows_rejected, 0)
        + coalesce(rows_ignored, 0) + coalesce(rows_superseded, 0)
ORDER BY upload_id
"""


def upload_check_specs() -> list[dg.AssetCheckSpec]:
    # Built in a function: the defs loader would take module-level specs for checks of their own.
    return [
        dg.AssetCheckSpec(
            FILES_APPLIED,
            asset=APPLIED_UPLOAD,
            description="Every file of the run applied: fails naming the files rejected or held "
            "by the removal guard (each one's raw_upload partition says why, under `status` and "
            "`problem`; its report is in rejected/).",
        ),
        dg.AssetCheckSpec(
            COUNTS_ADD_UP,
            asset=APPLIED_UPLOAD,
            description="Every applied upload accounts for each row it received: rows in = "
            "applied + rejected + ignored + superseded (SPEC section 3).",
        ),
        dg.AssetCheckSpec(
            NEVER_MIXED,
            asset=APPLIED_UPLOAD,
            description="No file behind a current Attentive subscriber segment carries both "
            "phone numbers and emails: such a file is rejected whole, never applied (SPEC "
            "section 2).",
        ),
    ]


def files_applied(refused: list[str]) -> dg.AssetCheckResult:
    """`refused`: "file: problem" of each file of the batch rejected or held."""
    return dg.AssetCheckResult(
        check_name=FILES_APPLIED,
        asset_key=APPLIED_UPLOAD,
        passed=not refused,
        description=f"not applied: {'; '.join(refused)}" if refused else None,
        metadata={"files_rejected": len(refused), "rejected": dg.MetadataValue.json(refused)},
    )


def upload_counts_add_up(con) -> dg.AssetCheckResult:
    unbalanced = frame(con, UNBALANCED_UPLOADS)
    unbalanced = unbalanced.with_columns(display_name_expr(pl.col("file_name")))
    return dg.AssetCheckResult(
        check_name=COUNTS_ADD_UP,
        asset_key=APPLIED_UPLOAD,
        passed=unbalanced.is_empty(),
        metadata={
            "uploads_unbalanced": unbalanced.height,
            "first_unbalanced": dg.MetadataValue.md(markdown_table(unbalanced.head(5))),
        },
    )


def subscriber_files_are_never_mixed(con, data: DataDir) -> dg.AssetCheckResult:
    applied = frame(
        con,
        # The files of each domain's latest delivery: what subscriber segments hold now.
        f"SELECT upload_id, file_name FROM uploads WHERE status = '{UploadStatus.APPLIED}' "
        "AND upload_id IN "
        "(SELECT upload_id FROM subscriber_deliveries) ORDER BY upload_id",
    )
    # One vectorized read per file; the archive keeps each file's bytes as received.
    mixed = [
        display_name(name)
        for upload_id, name in applied.iter_rows()
        if identifier_kinds(archived_file(data, upload_id).path) == {"phone", "email"}
    ]
    return dg.AssetCheckResult(
        check_name=NEVER_MIXED,
        asset_key=APPLIED_UPLOAD,
        passed=not mixed,
        metadata={
            "subscriber_files_checked": applied.height,
            "mixed_files": len(mixed),
            "first_mixed": ", ".join(mixed[:5]),
        },
    )


def batch_checks(con, data: DataDir, refused: list[str]) -> list[dg.AssetCheckResult]:
    """Every check of upload_check_specs, evaluated after a batch on its connection."""
    return [
        files_applied(refused),
        upload_counts_add_up(con),
        subscriber_files_are_never_mixed(con, data),
    ]
