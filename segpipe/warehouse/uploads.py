"""The `uploads` table: one row per received file, with its outcome and counts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from segpipe.vocabulary import UploadStatus
from segpipe.warehouse.guard import DEFAULT_LIMIT, RemovalLimit
from segpipe.warehouse.scratch import scratch
from segpipe.warehouse.sql import frame, registered, scalar


@dataclass(frozen=True)
class UploadContext:
    """The upload whose changes are being applied: what every table it writes records about it
    (upload_id, file name, the applying instant `at` as naive UTC, the Dagster run)."""

    upload_id: str
    file_name: str
    at: datetime
    run_id: str | None = None
    # The removal guard for full-replace kinds; None when the run forces large removals.
    removal_limit: RemovalLimit | None = DEFAULT_LIMIT


# The column that numbers the files of a batch (0, 1, ... in the order they apply) on the rows
# of small files resolved and applied together (segpipe/batch.py).
BATCH_FILE = "_file"


@contextmanager
def contexts_table(con: duckdb.DuckDBPyConnection, batch: Sequence[UploadContext]) -> Iterator[str]:
    """The uploads of a batch as a scratch table (BATCH_FILE, upload_id, run_id, "at"), for
    SQL that writes each row with its own upload's id, run and instant."""
    files = pl.DataFrame(
        {
            BATCH_FILE: range(len(batch)),
            "upload_id": [upload.upload_id for upload in batch],
            "run_id": [upload.run_id for upload in batch],
            "at": [upload.at for upload in batch],
        },
        schema={
            BATCH_FILE: pl.Int64,
            "upload_id": pl.String,
            "run_id": pl.String,
            "at": pl.Datetime("us"),
        },
    )
    with scratch(con, "batch_files") as name, registered(con, f"{name}_frame", files):
        con.execute(f"CREATE TEMP TABLE {name} AS FROM {name}_frame")
        yield name


COUNT_COLUMNS = ["rows_in", "rows_applied", "rows_rejected", "rows_ignored", "rows_superseded"]


def status_of(con: duckdb.DuckDBPyConnection, upload_id: str) -> str | None:
    return scalar(con, "SELECT status FROM uploads WHERE upload_id = ?", [upload_id])


def recent_uploads(con: duckdb.DuckDBPyConnection, limit: int | None) -> pl.DataFrame:
    """The `limit` uploads settled last (applied, rejected, held...), oldest first; every one
    when `limit` is None. By `applied_at`, not upload_id: the id encodes the file's mtime, so a
    file written long ago and run just now would sort among the oldest. A row without
    `applied_at` counts as oldest."""
    if limit is None:
        return frame(con, "SELECT * FROM uploads ORDER BY applied_at NULLS FIRST, upload_id")
    return frame(
        con,
        "SELECT * FROM (SELECT * FROM uploads "
        "ORDER BY applied_at DESC NULLS LAST, upload_id DESC LIMIT ?) "
        "ORDER BY applied_at NULLS FIRST, upload_id",
        [limit],
    )


def upload_count(con: duckdb.DuckDBPyConnection) -> int:
    return scalar(con, "SELECT count(*) FROM uploads")


def earlier_upload(
    con: duckdb.DuckDBPyConnection,
    upload_id: str,
    sha256: str,
    content_sha256: str,
    file_name: str | None = None,
) -> tuple[str | None, bool]:
    """(the applied upload that already brought these exact bytes, or else the same decoded
    content (ingest/guard.py's fingerprint), True when it is the bytes), or (None, False); only
    uploads under `file_name` when it is given. Bytes that were rejected before are processed
    again: renamed to a valid kind, they may apply. One statement for both questions: the same
    bytes win, then the earliest upload."""
    rows = con.execute(
        f"""
        SELECT u.upload_id, coalesce(u.sha256 = ?, false) AS same_bytes
        FROM uploads u LEFT JOIN upload_contents c USING (upload_id)
        WHERE (u.sha256 = ? OR c.content_sha256 = ?) AND u.upload_id <> ?
          AND u.status = '{UploadStatus.APPLIED}'
          AND (?::VARCHAR IS NULL OR lower(u.file_name) = lower(?))
        ORDER BY same_bytes DESC, u.upload_id LIMIT 1
        """,
        [sha256, sha256, content_sha256, upload_id, file_name, file_name],
    ).fetchall()
    return (rows[0][0], rows[0][1]) if rows else (None, False)


def record_content(con: duckdb.DuckDBPyConnection, upload_id: str, content_sha256: str) -> None:
    con.execute("DELETE FROM upload_contents WHERE upload_id = ?", [upload_id])
    con.execute("INSERT INTO upload_contents VALUES (?, ?)", [upload_id, content_sha256])


def record(
    con: duckdb.DuckDBPyConnection,
    *,
    upload_id: str,
    file_name: str,
    sha256: str,
    kind: str | None,
    status: str,
    counts: dict[str, int],
    size: int,
    received_at,
    applied_at,
    error: str | None = None,
    duplicate_of: str | None = None,
) -> None:
    """Write the upload's row, replacing an earlier attempt at the same upload."""
    con.execute("DELETE FROM uploads WHERE upload_id = ?", [upload_id])
    con.execute(
        "INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            upload_id,
            file_name,
            sha256,
            kind,
            status,
            *[counts.get(name, 0) for name in COUNT_COLUMNS],
            error,
            duplicate_of,
            size,
            received_at,
            applied_at,
        ],
    )
