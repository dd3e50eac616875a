"""Files rewritten without an erased person's lines: archived uploads, errors reports, exports.

The rest of a file keeps its bytes: lines are cut out of the text as it is (encoding, line
endings, quoting untouched), gzip files are decompressed and compressed again, and a file's
modification time is kept (the archive's arrival order is read from it). Lines are matched
as whole columns by polars string expressions, never row by row in Python.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import polars as pl

from segpipe.erasure.patterns import ID_KINDS, Needles
from segpipe.ingest.reader import normalize_header

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")
_DELIMITERS = (",", ";", "\t", "|")
SQLITE_MAGIC = b"SQLite format 3\x00"


def _decode(payload: bytes) -> tuple[str, str]:
    """(text, codec): UTF-16 with its BOM, else latin-1, which maps every byte to one
    character and back, so bytes in any other encoding survive the round trip unchanged."""
    if payload.startswith(_UTF16_BOMS):
        return payload.decode("utf-16"), "utf-16"
    return payload.decode("latin-1"), "latin-1"


def _as_text(value: str, codec: str) -> str:
    """An identifier as it appears in text decoded with `codec` (UTF-8 bytes read as latin-1)."""
    return value if codec == "utf-16" else value.encode("utf-8").decode("latin-1")


def _header(lines: pl.Series) -> tuple[str, list[str]] | None:
    """(delimiter, column names) from the first line that is not Excel's `sep=` line."""
    for line in lines.head(2).to_list():
        if line.lower().startswith("sep="):
            continue
        delimiter = max(_DELIMITERS, key=line.count)
        names = [
            normalize_header(n.strip().strip('"').lstrip("\ufeff")) for n in line.split(delimiter)
        ]
        return delimiter, names
    return None


def naming_lines(lines: pl.Series, needles: Needles, codec: str = "latin-1") -> pl.Series:
    """A boolean per line: does it name the person? Anywhere-patterns over each line, and the
    numeric ids as whole fields of the columns named for them (a naive split on the header's
    delimiter: a quoted delimiter earlier on the line can hide an id, never invent one)."""
    frame = pl.DataFrame({"line": lines})
    pattern = needles.line_pattern if needles.anywhere else None
    if pattern and codec != "utf-16":
        pattern = _as_text(pattern, codec)
    hit = pl.col("line").str.contains(pattern) if pattern else pl.lit(False)
    header = _header(lines) if any(needles.ids.values()) else None
    if header:
        delimiter, names = header
        fields = pl.col("line").str.split(delimiter)
        for position, name in enumerate(names):
            values = needles.ids.get(name) if name in ID_KINDS else None
            if values:
                cell = fields.list.get(position, null_on_oob=True).str.strip_chars(" \"'\r\n")
                hit = hit | cell.is_in(sorted(values)).fill_null(False)
    return frame.select(hit.alias("hit")).to_series()


def rewrite_file(path: Path, needles: Needles) -> int:
    """Rewrite `path` without the lines naming the person; returns how many lines went (0: the
    file is left untouched). Written under a temporary name and renamed, mtime kept."""
    payload = path.read_bytes()
    zipped = path.name.lower().endswith(".gz")
    if zipped:
        try:
            payload = gzip.decompress(payload)
        except OSError:
            return 0
    if payload.startswith(SQLITE_MAGIC):
        return 0
    text, codec = _decode(payload)
    lines = pl.Series("line", _LINES.findall(text), dtype=pl.String)
    hits = naming_lines(lines, needles, codec)
    removed = int(hits.sum())
    if not removed:
        return 0
    kept = "".join(lines.filter(~hits).to_list())
    out = kept.encode(codec) if codec == "latin-1" else kept.encode("utf-16")
    if zipped:
        out = gzip.compress(out, mtime=0)
    stat = path.stat()
    partial = path.with_name(f".{path.name}.erasing")
    partial.write_bytes(out)
    os.utime(partial, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(partial, path)
    return removed


def rewrite_tree(folder: Path, needles: Needles) -> dict[Path, int]:
    """Every file under `folder` rewritten without the person; {file: lines removed} of those
    that changed."""
    changed = {}
    if not folder.exists():
        return changed
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        if removed := rewrite_file(path, needles):
            changed[path] = removed
    return changed
