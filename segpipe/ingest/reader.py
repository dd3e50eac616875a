"""Turn a received file's bytes into a frame of strings, one row per data line.

Whole-file problems (not UTF-8, empty, no data rows, unreadable CSV, duplicate headers) raise
UploadRejected. Cells are trimmed and blank cells become null; nothing else is interpreted here.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from segpipe.ingest import headers
from segpipe.ingest.errors import UploadRejected

LINE = "_line"
MALFORMED = "_malformed"
FIELDS = "_fields"
_BOM = b"\xef\xbb\xbf"


def normalize_header(name: str) -> str:
    """`" Interest-Name "` -> `interest_name`: case, surrounding spaces, spaces and hyphens."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def decode(file_name: str, payload: bytes) -> bytes:
    """The file's UTF-8 bytes without BOM or gzip wrapping; checks the encoding."""
    if file_name.lower().endswith(".gz"):
        try:
            payload = gzip.decompress(payload)
        except OSError as error:
            raise UploadRejected(file_name, f"not a valid gzip file ({error})") from None
    if payload.startswith(_BOM):
        payload = payload[len(_BOM) :]
    if not payload.strip():
        raise UploadRejected(file_name, "file is empty")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as error:
        line = payload.count(b"\n", 0, error.start) + 1
        raise UploadRejected(
            file_name, f"not valid UTF-8 (line {line}, byte offset {error.start})"
        ) from None
    return payload


def read_rows(file_name: str, payload: bytes, *, header: bool, columns: int | None = None):
    """Parse CSV bytes into string columns plus `_line`, the 1-based line number in the file,
    and `_malformed`, the problem of a row whose field count differs from the header's."""
    text = decode(file_name, payload)
    try:
        records = pl.read_csv(
            io.BytesIO(text), has_header=False, infer_schema=False, truncate_ragged_lines=True
        )
    except pl.exceptions.PolarsError:
        # polars' message quotes the raw record, which may hold emails or phones: not passed on.
        raise UploadRejected(
            file_name, "not a readable CSV file: a quoted value is never closed"
        ) from None
    numbered = records.with_columns(
        pl.all().str.strip_chars().replace("", None),
        **_physical_lines(text, records.height),
    )
    expected = columns if not header else records.width
    if header:
        names = _header_names(file_name, numbered.row(0)[: records.width])
        numbered = numbered.slice(1).rename(dict(zip(records.columns, names, strict=True)))
    else:
        numbered = _exactly(numbered, records.columns, columns)
    data = numbered.filter(~pl.all_horizontal(pl.exclude(LINE, FIELDS).is_null()))
    if data.height == 0:
        raise UploadRejected(file_name, "file has no data rows")
    malformed = pl.when(pl.col(FIELDS).is_not_null() & (pl.col(FIELDS) != expected)).then(
        pl.format("line has {} fields, the header has {}", pl.col(FIELDS), pl.lit(expected))
        if header
        else pl.format("line has {} fields, expected {}", pl.col(FIELDS), pl.lit(expected))
    )
    return data.select(LINE, pl.exclude(LINE, FIELDS), malformed.alias(MALFORMED))


def _physical_lines(text: bytes, records: int) -> dict[str, pl.Expr]:
    """Each record's line number and field count, when every record is one physical line; when
    a quoted value spans lines, the record number and no count (nothing reliable to compare)."""
    lines = pl.Series(text.decode("utf-8").removesuffix("\n").split("\n"), dtype=pl.String)
    if lines.len() != records:
        return {
            LINE: pl.int_range(1, records + 1, dtype=pl.Int64),
            FIELDS: pl.lit(None, pl.Int64),
        }
    unquoted = lines.str.strip_suffix("\r").str.replace_all(r'"[^"]*"', "")
    fields = (unquoted.str.count_matches(",") + 1).cast(pl.Int64)
    return {
        LINE: pl.int_range(1, records + 1, dtype=pl.Int64),
        FIELDS: pl.lit(fields),
    }


def _exactly(frame: pl.DataFrame, read: list[str], columns: int) -> pl.DataFrame:
    """A headerless file's first `columns` columns, named column_1.., null-filled if short."""
    wanted = [f"column_{i + 1}" for i in range(columns)]
    cells = [
        pl.col(read[i]).alias(name) if i < len(read) else pl.lit(None, pl.String).alias(name)
        for i, name in enumerate(wanted)
    ]
    return frame.select(LINE, *cells, FIELDS)


def _header_names(file_name: str, row: tuple) -> list[str]:
    names = [normalize_header(name or "") for name in row]
    seen: set[str] = set()
    for name in names:
        if not name:
            raise UploadRejected(file_name, "header has an empty column name")
        if name in seen:
            raise UploadRejected(file_name, f"header names column '{name}' twice")
        if name.startswith("_"):
            raise UploadRejected(file_name, f"column names may not start with '_' ('{name}')")
        seen.add(name)
    return headers.canonical_names(file_name, [cell or "" for cell in row], names)


def read_file(path: Path, *, header: bool, columns: int | None = None) -> pl.DataFrame:
    return read_rows(path.name, path.read_bytes(), header=header, columns=columns)


# Files up to this size are parsed whole (the exact path small files always took); bigger
# ones stream in slices, so a 10M-row file is never one frame in memory.
WHOLE_FILE_BYTES = 64 * 1024**2


def only_lines(frame: pl.DataFrame, lines: pl.Series | None) -> pl.DataFrame:
    """The rows of `frame` on `lines` (`_line` values); all of them when `lines` is None."""
    return frame if lines is None else frame.filter(pl.col(LINE).is_in(lines.implode()))


def read_batches(
    path: Path,
    *,
    header: bool,
    columns: int | None = None,
    rows: int = 1_000_000,
    lines: pl.Series | None = None,
) -> Iterator[pl.DataFrame]:
    """The file's rows as consecutive frames of about `rows` rows, each like `read_file`'s;
    only the rows on `lines` (`_line` values) when given."""
    if path.stat().st_size <= WHOLE_FILE_BYTES:
        whole = only_lines(read_file(path, header=header, columns=columns), lines)
        for offset in range(0, whole.height, rows):
            yield whole.slice(offset, rows)
        return
    if path.name.lower().endswith(".gz") or not _plain_utf8(path):
        # Unwrapped in memory; decode also names the line of an encoding error.
        source = io.BytesIO(decode(path.name, path.read_bytes()))
    else:
        source = path  # read by polars itself: the file's bytes are never held whole
    yield from _streamed(path.name, source, header, columns, rows, lines)


def _plain_utf8(path: Path, block: int = 16 * 1024**2) -> bool:
    """True when the file is valid UTF-8 with no byte-order mark, checked a block at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as file:
        if file.read(len(_BOM)) == _BOM:
            return False
        file.seek(0)
        try:
            while chunk := file.read(block):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _cleaned(frame: pl.DataFrame) -> pl.DataFrame:
    """`_line` first; cells trimmed, blanks null."""
    return frame.select(
        pl.col(LINE).cast(pl.Int64), pl.exclude(LINE).str.strip_chars().replace("", None)
    )


def _streamed(file_name: str, source, header: bool, columns: int | None, rows: int, lines):
    first_line = 2 if header else 1
    lazy = pl.scan_csv(
        source,
        has_header=header,
        infer_schema=False,
        new_columns=[f"column_{i + 1}" for i in range(columns)] if columns else None,
    ).with_row_index(LINE, offset=first_line)
    if lines is not None:
        # Filtered inside the scan: a few refused rows out of millions are all that is kept.
        lazy = lazy.filter(pl.col(LINE).is_in(lines.cast(pl.Int64).implode()))
    next_line = first_line
    batches = lazy.collect_batches(chunk_size=rows, maintain_order=True)
    while True:
        try:
            batch = next(batches, None)
        except pl.exceptions.PolarsError:
            # polars' message quotes the raw record; a stream cannot set one row aside.
            raise UploadRejected(
                file_name,
                "not a readable CSV file: a quoted value is never closed, or a line has more "
                "fields than the header",
            ) from None
        if batch is None:
            break
        if header:
            # polars renames a repeated header to name_duplicated_0: the repeat is an error here.
            said = [re.sub(r"_duplicated_\d+$", "", name) for name in batch.columns[1:]]
            names = _header_names(file_name, said)
            batch = batch.rename(dict(zip(batch.columns[1:], names, strict=True)))
        yield _cleaned(batch).with_columns(pl.lit(None, pl.String).alias(MALFORMED))
        next_line += batch.height
    if next_line == first_line and lines is None:
        raise UploadRejected(file_name, "file has no data rows")
