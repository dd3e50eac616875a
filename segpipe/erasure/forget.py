"""`segpipe forget`: erase one person from everything a deployment keeps (SPEC 4, 8).

In order: the warehouse rows (one transaction; what stays is a salted hash of each of their
identifiers in `erasures`), the archived files (rewritten without their rows, each rewrite
recorded in `archive_rewrites`), `rejected/*.errors.csv`, `exports/**` with its history
copies, then the database file rewritten fresh (no free block or WAL keeps them) and the
Dagster instance storage scrubbed. Archived files are changed here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from segpipe.attentive import E164_PATTERN
from segpipe.config import DataDir
from segpipe.erasure.dagster_storage import scrub_home
from segpipe.erasure.files import rewrite_tree
from segpipe.erasure.patterns import needles
from segpipe.ingest import normalize
from segpipe.ingest.receive import sha256_of
from segpipe.warehouse import erasures
from segpipe.warehouse.connection import connect
from segpipe.warehouse.sql import registered, transaction
from segpipe.warehouse.suppressions import IdentifierKind


class ForgetError(ValueError):
    """The identifier given cannot name anyone (an invalid email or phone, a non-numeric id)."""


@dataclass
class ForgetReport:
    people: int = 0
    warehouse_rows: int = 0
    archived_files: dict[str, int] = field(default_factory=dict)  # data-dir path -> lines
    reports: dict[str, int] = field(default_factory=dict)
    exports: dict[str, int] = field(default_factory=dict)
    dagster: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [
            f"people erased: {self.people} (warehouse rows deleted: {self.warehouse_rows})",
            f"archived files rewritten: {len(self.archived_files)} "
            f"({sum(self.archived_files.values())} line(s) removed)",
            f"errors reports rewritten: {len(self.reports)}",
            f"export files rewritten: {len(self.exports)}",
            f"Dagster storage files scrubbed: {len(self.dagster)}",
        ]


def canonical(kind: IdentifierKind, value: str) -> str:
    """The identifier as the warehouse keeps it: email trimmed and lower-cased, phone E.164
    (default country US), ids as written without surrounding spaces. ForgetError if invalid."""
    column = pl.Series("v", [value], dtype=pl.String)
    if kind == IdentifierKind.EMAIL:
        text = pl.select(normalize.email(pl.lit(column))).item()
        pattern = normalize.EMAIL_PATTERN
    elif kind == IdentifierKind.PHONE:
        text = pl.select(normalize.phone_e164(pl.lit(column))).item()
        pattern = E164_PATTERN
    else:
        text = value.strip()
        pattern = normalize.WHOLE_NUMBER_PATTERN if kind == IdentifierKind.CONS_ID else r"\S"
    if not text or not pl.select(pl.lit(text).str.contains(pattern)).item():
        raise ForgetError(f"not a valid {kind}")
    return text


def forget(
    data: DataDir, kind: IdentifierKind, value: str, *, at: datetime, dagster_home: Path | None
) -> ForgetReport:
    """Erase the person `value` (a `kind` identifier) names; see the module docstring. The
    warehouse must not be open elsewhere (run it in the `duckdb` pool). Raises ForgetError."""
    value = canonical(kind, value)
    report = ForgetReport()
    with connect(data.warehouse) as con:
        found = erasures.find_people(con, kind, value)
        report.people = len(found.people)
        marks = needles(found)
        # Files first: if anything stops half-way, the person is still in the warehouse and
        # running forget again finds every identifier again.
        report.archived_files = _relative(data, rewrite_tree(data.archive, marks))
        report.reports = _relative(data, rewrite_tree(data.rejected, marks))
        report.exports = _relative(data, rewrite_tree(data.exports, marks))
        _relative(data, rewrite_tree(data.staging, marks))
        with transaction(con):
            report.warehouse_rows = erasures.erase_people(con, found, at)
            _record_rewrites(con, data, report.archived_files, at)
    erasures.compact(data.warehouse)
    if dagster_home is not None:
        report.dagster = scrub_home(dagster_home, marks)
    return report


def _relative(data: DataDir, changed: dict[Path, int]) -> dict[str, int]:
    return {str(path.relative_to(data.root)): lines for path, lines in changed.items()}


def _record_rewrites(con, data: DataDir, changed: dict[str, int], at: datetime) -> None:
    """One archive_rewrites row per archived file rewritten: on the upload it belongs to."""
    rows = pl.DataFrame(
        [
            {
                "upload_id": Path(path).parent.name,
                "file_name": Path(path).name,
                "rows_removed": lines,
                "sha256_after": sha256_of(data.root / path),
                "at": at,
            }
            for path, lines in changed.items()
        ],
        schema={
            "upload_id": pl.String,
            "file_name": pl.String,
            "rows_removed": pl.Int64,
            "sha256_after": pl.String,
            "at": pl.Datetime("us"),
        },
    )
    with registered(con, "_rewrites", rows):
        con.execute(
            "INSERT INTO archive_rewrites "
            'SELECT upload_id, file_name, rows_removed, sha256_after, "at" FROM _rewrites'
        )
