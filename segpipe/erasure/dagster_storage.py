"""An erased person taken out of Dagster's instance storage: event log, runs, compute logs.

Previews in materialization metadata mask emails and phones, but carry the rest of a row (a
text member id, an external id); a `forget_person_job` run keeps its run config. This module
scrubs the SQLite files of a SQLite-backed instance (segpipe's default, under DAGSTER_HOME)
without importing Dagster: every text value that names the person is rewritten (in JSON, each
string that names them loses the lines that do, or becomes "[erased]"), then each database is
VACUUMed and its WAL truncated, so no deleted page keeps the old bytes. Other files there
(compute logs) lose the lines that name the person.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from segpipe.erasure.files import SQLITE_MAGIC, rewrite_file
from segpipe.erasure.patterns import Needles

ERASED = "[erased]"


class _Scrubber:
    def __init__(self, needles: Needles):
        self.needles = needles
        parts = [needles.alternatives] if needles.anywhere else []
        if needles.cell_pattern:
            parts.append(needles.cell_pattern)
        joined = "|".join(f"(?:{p})" for p in parts)
        self.pattern = re.compile(joined, re.IGNORECASE) if parts else None
        self.exact = {v for values in needles.ids.values() for v in values}

    def names(self, text: str) -> bool:
        return bool(self.pattern and self.pattern.search(text)) or text.strip() in self.exact

    def string(self, text: str) -> str:
        if not self.names(text):
            return text
        lines = [line for line in text.split("\n") if not self.names(line)]
        kept = "\n".join(lines)
        return ERASED if self.names(kept) or not lines else kept

    def value(self, value):
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def stored(self, raw: str) -> str:
        """A stored value: JSON (Dagster's serialized records) walked string by string."""
        try:
            document = json.loads(raw)
        except ValueError:
            return self.string(raw)
        return json.dumps(self.value(document))


def _text_columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in con.execute(f'PRAGMA table_info("{table}")')]


def scrub_sqlite(path: Path, needles: Needles) -> int:
    """Rewrite the values naming the person in every table of the SQLite file `path`, then
    VACUUM it; returns the values changed."""
    scrubber = _Scrubber(needles)
    changed = 0
    con = sqlite3.connect(path, timeout=30)
    try:
        tables = [
            row[0]
            for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not row[0].startswith("sqlite_")
        ]
        for table in tables:
            for column in _text_columns(con, table):
                changed += _scrub_column(con, table, column, scrubber)
        con.commit()
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return changed


def _scrub_column(con: sqlite3.Connection, table: str, column: str, scrubber: _Scrubber) -> int:
    """A cheap substring filter in SQLite first, then the exact patterns in Python on the few
    rows it lets through."""
    literals = scrubber.needles.literals
    if not literals:
        return 0
    where = " OR ".join(f'instr(lower(CAST("{column}" AS TEXT)), ?) > 0' for _ in literals)
    rows = con.execute(
        f'SELECT rowid, "{column}" FROM "{table}" WHERE {where}', list(literals)
    ).fetchall()
    changed = 0
    for rowid, raw in rows:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not isinstance(text, str):
            continue
        cleaned = scrubber.stored(text)
        if cleaned != text:
            con.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?', [cleaned, rowid])
            changed += 1
    return changed


def scrub_home(home: Path, needles: Needles) -> dict[str, int]:
    """Every SQLite file and other file under the Dagster home scrubbed; {relative path:
    values or lines removed} of those that changed. dagster.yaml is left alone."""
    changed: dict[str, int] = {}
    if not home.exists():
        return changed
    for path in sorted(p for p in home.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.name == "dagster.yaml" or path.name.endswith(("-wal", "-shm", "-journal")):
            continue
        with path.open("rb") as handle:
            is_sqlite = handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
        removed = scrub_sqlite(path, needles) if is_sqlite else rewrite_file(path, needles)
        if removed:
            changed[str(path.relative_to(home))] = removed
    return changed
