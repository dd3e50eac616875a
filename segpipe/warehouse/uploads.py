"""The `uploads` table: one row per received file, with its outcome and counts."""

from __future__ import annotations

import duckdb

from segpipe.warehouse.sql import scalar

COUNT_COLUMNS = ["rows_in", "rows_applied", "rows_rejected", "rows_ignored", "rows_superseded"]


def status_of(con: duckdb.DuckDBPyConnection, upload_id: str) -> str | None:
    return scalar(con, "SELECT status FROM uploads WHERE upload_id = ?", [upload_id])


def earlier_copy(
    con: duckdb.DuckDBPyConnection, upload_id: str, sha256: str, file_name: str | None = None
) -> str | None:
    """The applied upload that already brought these exact bytes (and, when `file_name` is
    given, under that name), if any. Bytes that were rejected before are processed again:
    renamed to a valid kind, they may apply."""
    return scalar(
        con,
        """
        SELECT upload_id FROM uploads
        WHERE sha256 = ? AND upload_id <> ? AND status = 'applied'
          AND (?::VARCHAR IS NULL OR lower(file_name) = lower(?))
        ORDER BY upload_id LIMIT 1
        """,
        [sha256, upload_id, file_name, file_name],
    )


def earlier_content(
    con: duckdb.DuckDBPyConnection,
    upload_id: str,
    content_sha256: str,
    file_name: str | None = None,
) -> str | None:
    """The applied upload whose decoded content (ingest/guard.py's fingerprint) is the same as
    this one's, if any; under the same name when `file_name` is given (as `earlier_copy`)."""
    return scalar(
        con,
        """
        SELECT u.upload_id FROM uploads u JOIN upload_contents c USING (upload_id)
        WHERE c.content_sha256 = ? AND u.upload_id <> ? AND u.status = 'applied'
          AND (?::VARCHAR IS NULL OR lower(u.file_name) = lower(?))
        ORDER BY u.upload_id LIMIT 1
        """,
        [content_sha256, upload_id, file_name, file_name],
    )


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
