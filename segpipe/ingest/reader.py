"""Turn a received file's bytes into frames of strings, one row per record, each with the
physical line it starts on.

The dialect (segpipe.ingest.dialect) is detected once from the file's head. Records are found
over whole columns of physical lines: a line continues the record before it when that record's
quoted value is still open, which a two-state automaton over the lines decides (RFC 4180: a
quote opens a quoted value only at the start of a field; inside one, `""` is a quote). Each
record is then judged on its own:

- a NUL byte, a quote inside an unquoted value (`Bob,O"Neil`), or more or fewer fields than the
  header reject that record only (`_malformed` holds the reason; its cells are null);
- every other record is parsed by polars, cells trimmed, blank cells null.

A block with no quote, no NUL byte and the header's field count on every line (the usual
export) skips the automaton: polars parses its bytes directly, one record per line.

Whole-file problems (encoding, empty, no data rows, an unclosed quote at the end, duplicate or
reserved header names, an unnamed column holding values) raise UploadRejected. Files over
WHOLE_FILE_BYTES are read in blocks cut at record boundaries, with the same result.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import polars as pl

from segpipe.ingest import dialect as dialects
from segpipe.ingest import headers
from segpipe.ingest.dialect import Dialect, LineEnding
from segpipe.ingest.errors import UploadRejected
from segpipe.ingest.masking import display_name

LINE = "_line"
MALFORMED = "_malformed"
RECEIVED = "_received"  # the record's text as received; only on re-reads of chosen lines
_TEXT = "_text"
_OPEN = "_open"
_STRICT = "_strict"
# Files up to this size are parsed whole; bigger ones are read in blocks of about BLOCK_BYTES,
# so a 10M-row file is never one frame in memory.
WHOLE_FILE_BYTES = 64 * 1024**2
BLOCK_BYTES = 32 * 1024**2
NUL_BYTE = "contains a NUL byte"
STRAY_QUOTE = (
    'a quote (") inside an unquoted value or after a closing quote; '
    "put the whole value in quotes and double the quote inside it"
)
_IN_CLASS = {",": ",", ";": ";", "\t": r"\t", "|": r"\|"}
_UNUSED_BYTES = ("\x1f", "\x1e", "\x01")  # separators for reading whole lines as one column
T = TypeVar("T")
_END = object()


def normalize_header(name: str) -> str:
    """`" Interest-Name "` -> `interest_name`: case, surrounding spaces, spaces and hyphens."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


@dataclass(frozen=True)
class _Grammar:
    """Regular expressions over one line or record for a delimiter (rust regex, no lookaround)."""

    open_from_out: str  # a line read from a field start ends inside a quoted value
    open_from_in: str  # a line read from inside a quoted value ends inside one
    strict: str  # a record is exactly RFC 4180 fields
    quoted: str  # one quoted value

    @classmethod
    def of(cls, delimiter: str) -> _Grammar:
        d = _IN_CLASS[delimiter]
        body = r'(?:[^"]|"")*'
        lenient = rf'(?:"{body}"[^{d}"]*|[^{d}"][^{d}]*|)'
        field = rf'(?:"{body}"|[^{d}"]*)'
        return cls(
            open_from_out=rf'^(?:{lenient}{d})*"{body}$',
            open_from_in=rf'^{body}$|^{body}"[^{d}"]*(?:{d}{lenient})*{d}"{body}$',
            strict=rf"^{field}(?:{d}{field})*$",
            quoted=rf'"{body}"',
        )


@dataclass(frozen=True)
class Header:
    """The columns records are read into: names as written ("" when unnamed), and how many
    fields a record may have (Excel pads rows with empty trailing columns, or not)."""

    names: list[str]
    min_fields: int

    @property
    def width(self) -> int:
        return len(self.names)


def read_rows(
    file_name: str,
    payload: bytes,
    *,
    header: bool,
    columns: int | None = None,
    dialect: Dialect | None = None,
) -> pl.DataFrame:
    """Parse a file's bytes into string columns plus `_line` (the physical line each record
    starts on, 1-based) and `_malformed` (why a record is refused, else null)."""
    if file_name.lower().endswith(".gz"):
        payload = _gunzip(file_name, payload)
    dialect = dialect or dialects.detect_bytes(file_name, payload[: dialects.SAMPLE_BYTES])
    content = dialects.utf8_content(file_name, payload, dialect.encoding)
    frames = _read(file_name, dialect, header, columns, None, iter([content]))
    return _one(list(frames))


def read_file(
    path: Path,
    *,
    header: bool,
    columns: int | None = None,
    dialect: Dialect | None = None,
    lines: pl.Series | None = None,
) -> pl.DataFrame:
    """The whole file as one frame (see read_batches)."""
    return _one(
        list(
            read_batches(
                path, header=header, columns=columns, rows=None, lines=lines, dialect=dialect
            )
        )
    )


def _one(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def only_lines(frame: pl.DataFrame, lines: pl.Series | None) -> pl.DataFrame:
    """The rows of `frame` on `lines` (`_line` values); all of them when `lines` is None."""
    return frame if lines is None else frame.filter(pl.col(LINE).is_in(lines.implode()))


def read_batches(
    path: Path,
    *,
    header: bool,
    columns: int | None = None,
    rows: int | None = 1_000_000,
    lines: pl.Series | None = None,
    dialect: Dialect | None = None,
) -> Iterator[pl.DataFrame]:
    """The file's records as consecutive frames of about `rows` rows: string columns named by
    the header (normalized) or column_1.. (headerless, `columns` of them), `_line` Int64 and
    `_malformed` String. With `lines` (`_line` values), only those records, each with
    `_received`, its text as received. Raises UploadRejected for whole-file problems."""
    dialect = dialect or dialects.detect(path)
    small = path.stat().st_size <= WHOLE_FILE_BYTES
    blocks = _contents(path, dialect, whole=small)
    for frame in _read(path.name, dialect, header, columns, lines, blocks):
        if rows is None:
            yield frame
            continue
        for offset in range(0, max(frame.height, 1), rows):
            yield frame.slice(offset, rows)


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """The items of `items`, each next one computed in a background thread while the caller
    works on the current one (at most one item ahead, so memory holds two at a time): the next
    slice of a file is read and validated while this one is inserted."""
    with ThreadPoolExecutor(1, thread_name_prefix="segpipe-read-ahead") as pool:
        pending = pool.submit(next, items, _END)
        while (item := pending.result()) is not _END:
            pending = pool.submit(next, items, _END)
            yield item


def _read(file_name, dialect, header, columns, lines, blocks) -> Iterator[pl.DataFrame]:
    """The frames of `blocks`; a block with no rows (a header alone in the first block, say)
    gives none unless the file gives no rows at all."""
    reading = _Reading(file_name, dialect, header, columns, lines)
    yielded, first_empty = False, None
    for frame in reading.frames(blocks):
        if frame.height:
            yielded = True
            yield frame
        elif first_empty is None:
            first_empty = frame
    if reading.records == 0 and lines is None:
        raise UploadRejected(file_name, "file has no data rows")
    if not yielded and first_empty is not None:
        yield first_empty


def _gunzip(file_name: str, payload: bytes) -> bytes:
    try:
        return gzip.decompress(payload)
    except (OSError, EOFError) as error:
        raise UploadRejected(file_name, f"not a valid gzip file ({error})") from None


def _contents(path: Path, dialect: Dialect, *, whole: bool) -> Iterator[bytes]:
    """The file's UTF-8 content: whole, or in blocks of about BLOCK_BYTES cut after a line
    break. Compressed and UTF-16 files are unwrapped in memory first."""
    if whole or dialect.gzip or dialect.encoding in dialects.TRANSCODED:
        payload = path.read_bytes()
        if dialect.gzip:
            payload = _gunzip(path.name, payload)
        content = dialects.utf8_content(path.name, payload, dialect.encoding)
        if whole:
            yield content
            return
        source = io.BytesIO(content)
    else:
        source = path.open("rb")
        source.read(len(dialects.bom_of(dialect.encoding)))
    with source:
        yield from _cut_blocks(source, b"\r" if dialect.line_ending == LineEnding.CR else b"\n")


def _cut_blocks(source, line_break: bytes) -> Iterator[bytes]:
    rest = b""
    while block := source.read(BLOCK_BYTES):
        cut = block.rfind(line_break) + 1
        if cut == 0:
            rest += block
            continue
        # One copy of the block's bytes (the join), not two (a concatenation, then a slice).
        yield b"".join((rest, memoryview(block)[:cut]))
        rest = block[cut:]
    if rest:
        yield rest


class _Reading:
    """One pass over a file's content blocks: the header, line numbers and counts carry over."""

    def __init__(self, file_name, dialect: Dialect, header: bool, columns, lines):
        self.file_name = file_name
        self.dialect = dialect
        self.has_header = header
        self.header: Header | None = (
            None if header else Header([f"column_{i + 1}" for i in range(columns)], columns)
        )
        self.lines = lines
        self.grammar = _Grammar.of(dialect.delimiter)
        self.records = 0  # data records seen, blank lines not counted

    def frames(self, blocks: Iterator[bytes]) -> Iterator[pl.DataFrame]:
        """One frame per block; a record still open at a block's end moves to the next."""
        next_line = 2 if self.dialect.sep_line else 1
        carried = b""
        pending = next(blocks, None)
        sep_line = dialects.SEP_LINE.match(pending or b"") if self.dialect.sep_line else None
        if sep_line:
            pending = pending[sep_line.end() :]
        while pending is not None:
            block = carried + pending
            following = next(blocks, None)
            frame, carried, consumed = self._block(block, next_line, last=following is None)
            next_line += consumed
            if frame is not None:
                yield frame
            pending = following
        if self.header is None:
            raise UploadRejected(self.file_name, "file is empty")

    def _block(self, block: bytes, first_line: int, last: bool):
        """(frame or None, bytes carried to the next block, physical lines consumed)."""
        if self.dialect.line_ending == LineEnding.CR:
            block = block.replace(b"\r", b"\n")
        skipped = 0
        if self.header is None:
            block, skipped = self._take_header(block, first_line)
        if self.header is not None and self.lines is not None and block and b'"' not in block:
            chosen = self._chosen_lines(block, first_line + skipped)
            if chosen is not None:
                frame, lines = chosen
                return frame, b"", skipped + lines
        if self.header is not None:
            regular = self._regular(block, first_line + skipped)
            if regular is not None:
                frame, lines = regular
                return frame, b"", skipped + lines
        frame, carried, consumed = self._records_of(block, first_line + skipped, last)
        return frame, carried, skipped + consumed

    def _take_header(self, block: bytes, first_line: int) -> tuple[bytes, int]:
        """The block after its header line, and the lines that took (blank ones first), when
        the header is one complete line; else the block unchanged, for the record path."""
        blank = re.match(rb"(?:[ \t]*\r?\n)*", block).end()
        end = block.find(b"\n", blank)
        if end < 0:
            return block, 0
        text = _as_text(self.file_name, block[blank:end], first_line)
        record = _records(text, self.grammar, first_line)
        if record[_OPEN][0]:
            return block, 0  # a header with a line break inside a quoted name
        skipped = block.count(b"\n", 0, blank)
        self.header = self._read_header({LINE: first_line + skipped, _TEXT: record[_TEXT][0]})
        return block[end + 1 :], skipped + 1

    def _regular(self, block: bytes, first_line: int) -> tuple[pl.DataFrame, int] | None:
        """The fast path of the usual block: no quote, no NUL byte, every line holding the
        header's number of fields (its delimiter count adds up, and polars finds no line with
        more), one record per line. (frame, lines read), or None when any of that fails (the
        record path then)."""
        header, d = self.header, self.dialect.delimiter
        lines = _line_count(block)
        if (
            b'"' in block
            or b"\x00" in block
            or block.count(d.encode()) != (header.width - 1) * lines
        ):
            return None
        try:
            parsed = _parse(block, d, width=header.width, strict=True)
        except pl.exceptions.PolarsError:
            return None  # a line with more fields, or bytes that are not UTF-8
        if parsed.height != lines:
            return None
        rows = parsed.with_row_index(LINE, offset=first_line).with_columns(
            pl.col(LINE).cast(pl.Int64), pl.lit(None, pl.String).alias(MALFORMED)
        )
        if self.lines is not None:
            # Without quotes a line is exactly its fields joined by the delimiter.
            rows = rows.filter(pl.col(LINE).is_in(self.lines.cast(pl.Int64).implode()))
            cells = [pl.col(name).fill_null("") for name in parsed.columns]
            rows = rows.with_columns(pl.concat_str(cells, separator=d).alias(RECEIVED))
        return self._finished(rows), lines

    def _chosen_lines(self, block: bytes, first_line: int) -> tuple[pl.DataFrame, int] | None:
        """A re-read of a block with no quote, where each physical line is one record: (the
        records on `lines`, judged and parsed as the record path does, each with `_received`;
        the block's physical lines), or None when the block cannot be cut into lines this way.
        Only the chosen lines are parsed: the errors report of a 10M-row upload asks for a few
        lines of each block (README, "Design measurements")."""
        lines = _physical_lines(block)
        if lines is None:
            return None
        wanted = self.lines.cast(pl.Int64)
        wanted = wanted.filter(wanted.is_between(first_line, first_line + lines.len() - 1))
        records = pl.DataFrame({LINE: wanted, _TEXT: lines.gather(wanted - first_line)})
        records = records.filter(pl.col(_TEXT).str.strip_chars() != "")
        return self._rows(records.with_columns(pl.lit(True).alias(_STRICT))), lines.len()

    def _records_of(self, block: bytes, first_line: int, last: bool):
        """The record path: (frame or None, bytes carried, physical lines consumed)."""
        if not block:
            return None, b"", 0
        text = _as_text(self.file_name, block, first_line)
        lines = text.str.split("\n").explode()
        if block.endswith(b"\n"):
            lines = lines.slice(0, lines.len() - 1)
        records = _records(lines, self.grammar, first_line)
        carried, consumed = b"", lines.len()
        if records.height and records[_OPEN][-1]:
            start = records[LINE][-1]
            if last:
                raise UploadRejected(
                    self.file_name, f"line {start}: a quoted value is never closed"
                )
            keep = start - first_line
            carried = block[lines.slice(0, keep).str.len_bytes().sum() + keep :]
            records, consumed = records.slice(0, records.height - 1), keep
        records = records.filter(pl.col(_TEXT).str.strip_chars() != "")
        if self.header is None:
            if records.is_empty():
                return None, carried, consumed
            self.header = self._read_header(records.row(0, named=True))
            records = records.slice(1)
        frame = self._rows(records)
        return frame, carried, consumed

    def _read_header(self, record: dict) -> Header:
        line, text = record[LINE], record[_TEXT]
        if "\x00" in text:
            raise UploadRejected(self.file_name, f"line {line} (the header) {NUL_BYTE}")
        if not pl.Series([text]).str.contains(self.grammar.strict).item():
            raise UploadRejected(self.file_name, f"line {line} (the header): {STRAY_QUOTE}")
        cells = _parse(text.encode() + b"\n", self.dialect.delimiter, width=None).row(0)
        names = [cell.strip() if cell else "" for cell in cells]
        named = max((i + 1 for i, name in enumerate(names) if name), default=0)
        _header_names(self.file_name, [n for n in names if n])
        return Header(names, named)

    def _rows(self, records: pl.DataFrame) -> pl.DataFrame:
        """The records of one block, parsed or refused, in line order."""
        header, d = self.header, self.dialect.delimiter
        if self.lines is not None:
            records = records.filter(pl.col(LINE).is_in(self.lines.cast(pl.Int64).implode()))
        judged = records.with_columns(
            pl.when(pl.col(_TEXT).str.contains("\x00", literal=True))
            .then(pl.lit(NUL_BYTE))
            .when(~pl.col(_STRICT))
            .then(pl.lit(STRAY_QUOTE))
            .alias(MALFORMED)
        )
        good = judged.filter(pl.col(MALFORMED).is_null())
        # A NUL field after each record (NUL never is in one that got here) lands in column
        # k+1 of a record of k fields: where it lands says the record's count, in one parse.
        parsed = _parse(_joined(good[_TEXT] + f"{d}\x00"), d, width=header.width + 1)
        if parsed.height != good.height:  # the automaton and polars must agree on records
            raise RuntimeError(
                f"{display_name(self.file_name)}: {parsed.height} rows for {good.height} records"
            )
        cells = [f"column_{i + 1}" for i in range(header.width)]
        counted = pl.any_horizontal(
            pl.col(f"column_{fields + 1}") == "\x00"
            for fields in range(header.min_fields, header.width + 1)
        )
        miscounted = parsed.select(~counted.fill_null(False)).to_series().arg_true()
        reasons = pl.repeat(None, good.height, dtype=pl.String, eager=True).alias(MALFORMED)
        if miscounted.len():
            reasons = reasons.scatter(miscounted, self._field_counts(good[_TEXT][miscounted]))
        parsed = parsed.select(pl.col(cells).replace("\x00", None)).with_columns(
            reasons, good[LINE]
        )
        rows = pl.concat(
            [
                parsed.with_columns(
                    pl.when(pl.col(MALFORMED).is_null()).then(pl.col(c)).alias(c) for c in cells
                ),
                judged.filter(pl.col(MALFORMED).is_not_null())
                .select(LINE, MALFORMED)
                .with_columns(pl.lit(None, pl.String).alias(c) for c in cells),
            ],
            how="diagonal",
        )
        if self.lines is not None:
            rows = rows.join(judged.select(LINE, pl.col(_TEXT).alias(RECEIVED)), on=LINE)
        return self._finished(rows)

    def _field_counts(self, texts: pl.Series) -> pl.Series:
        """ "line has N fields, the header has M" for each record of `texts`."""
        fields = (
            texts.str.replace_all(self.grammar.quoted, "").str.count_matches(
                self.dialect.delimiter, literal=True
            )
            + 1
        )
        expected = (
            f"the header has {self.header.width}"
            if self.has_header
            else f"expected {self.header.width}"
        )
        return pl.select(pl.format("line has {} fields, {}", fields, pl.lit(expected))).to_series()

    def _finished(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Parsed and refused rows (`_line`, column_1.., `_malformed`) in line order, cells
        trimmed and blanks null, rows with no value left out, columns named."""
        cells = [f"column_{i + 1}" for i in range(self.header.width)]
        rows = rows.sort(LINE).with_columns(pl.col(cells).str.strip_chars().replace("", None))
        rows = rows.filter(
            pl.col(MALFORMED).is_not_null() | ~pl.all_horizontal(pl.col(cells).is_null())
        )
        self.records += rows.height  # counted only when every line is read (lines is None)
        return self._named(rows, cells)

    def _named(self, rows: pl.DataFrame, cells: list[str]) -> pl.DataFrame:
        """Cells renamed to the header's names; unnamed columns dropped when empty."""
        header = self.header
        if not self.has_header:
            return rows.select(LINE, *cells, MALFORMED, *rows.select(f"^{RECEIVED}$").columns)
        unnamed = [cell for cell, name in zip(cells, header.names, strict=True) if not name]
        for number, cell in enumerate(cells, start=1):
            if cell in unnamed and rows[cell].null_count() < rows.height:
                line = rows.filter(pl.col(cell).is_not_null())[LINE][0]
                raise UploadRejected(
                    self.file_name,
                    f"column {number} has no name in the header but holds values "
                    f"(first on line {line})",
                )
        names = _header_names(self.file_name, [n for n in header.names if n])
        kept = [cell for cell in cells if cell not in unnamed]
        return rows.select(
            LINE,
            *[pl.col(cell).alias(name) for cell, name in zip(kept, names, strict=True)],
            MALFORMED,
            *rows.select(f"^{RECEIVED}$").columns,
        )


def _as_text(file_name: str, block: bytes, first_line: int) -> pl.Series:
    """The block as one polars string (checked UTF-8, in Rust)."""
    try:
        return pl.Series([block], dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError:
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as error:
            raise dialects.not_utf8(file_name, block, error, first_line) from None
        raise


def _line_count(block: bytes) -> int:
    """The block's physical lines: its line breaks (LF), and a last line that has none."""
    return block.count(b"\n") + (0 if block.endswith(b"\n") or not block else 1)


def _physical_lines(block: bytes) -> pl.Series | None:
    """The physical lines of a block with no quote (a final CR removed, a blank line null), or
    None when polars cannot give them one row each. polars reads them as one column, split on
    a byte the block does not hold: a tenth of the time and half the memory of splitting the
    block as one string."""
    separator = next((byte for byte in _UNUSED_BYTES if byte.encode() not in block), None)
    if separator is None:
        return None
    try:
        lines = pl.read_csv(
            io.BytesIO(block),
            has_header=False,
            separator=separator,
            quote_char=None,
            schema={_TEXT: pl.String},
        )[_TEXT]
    except pl.exceptions.PolarsError:
        return None
    return lines if lines.len() == _line_count(block) else None


def _records(lines: pl.Series, grammar: _Grammar, first_line: int) -> pl.DataFrame:
    """`_line` (where each record starts), `_text` (its lines joined by LF, a final CR
    removed), `_strict` (it is exactly RFC 4180 fields) and `_open` (it ends inside a quoted
    value: only the last record can)."""
    frame = pl.DataFrame({_TEXT: lines}).with_row_index(LINE, offset=first_line)
    frame = frame.with_columns(pl.col(LINE).cast(pl.Int64))
    line = pl.col(_TEXT).str.strip_suffix("\r")
    if not frame.select(pl.col(_TEXT).str.contains('"', literal=True).any()).item():
        return frame.select(LINE, line, pl.lit(True).alias(_STRICT), pl.lit(False).alias(_OPEN))
    frame = frame.with_columns(line.str.contains(grammar.strict).alias(_STRICT))
    # Each line maps the state it starts in (outside or inside a quoted value) to the state it
    # ends in: from_out and from_in. Equal: a reset; from_out only: a flip; else identity.
    # A strict line closes every quote it opens, so only the others can end one open.
    unsure = frame[_STRICT].not_().arg_true()
    from_out = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True).scatter(
        unsure, frame[_TEXT].gather(unsure).str.contains(grammar.open_from_out)
    )
    if not from_out.any():  # the first line starts outside, and so does every next
        return frame.select(LINE, line, _STRICT, pl.lit(False).alias(_OPEN))
    has_quote = pl.col(_TEXT).str.contains('"', literal=True)
    from_in = ~has_quote | pl.col(_TEXT).str.contains(grammar.open_from_in)
    frame = frame.with_columns(from_out.alias("_from_out"))
    from_out = pl.col("_from_out")
    reset = from_out == from_in
    flips = (from_out & ~from_in).cast(pl.Int64).cum_sum()
    base = pl.when(reset).then(from_out).forward_fill().fill_null(False)
    flips_at_reset = pl.when(reset).then(flips).forward_fill().fill_null(0)
    ends_open = base ^ ((flips - flips_at_reset) % 2 == 1)
    states = frame.with_columns(ends_open.alias(_OPEN)).drop("_from_out", _STRICT)
    record = (~pl.col(_OPEN).shift(1, fill_value=False)).cum_sum().alias("_record")
    return (
        states.group_by(record, maintain_order=True)
        .agg(
            pl.col(LINE).first(),
            pl.col(_TEXT).str.join("\n").str.strip_suffix("\r"),
            pl.col(_OPEN).last(),
        )
        .drop("_record")
        .with_columns(pl.col(_TEXT).str.contains(grammar.strict).alias(_STRICT))
    )


def _joined(texts: pl.Series) -> bytes:
    """Records as one CSV text, each ending in LF (joined in Rust, handed over as bytes)."""
    if texts.is_empty():
        return b""
    return (texts + "\n").str.join("").cast(pl.Binary).item()


def _parse(content: bytes, delimiter: str, width: int | None, strict: bool = False):
    """Records known to be well-formed, parsed by polars into column_1.. strings; a record
    with fewer fields than `width` is null-filled. `strict`: a longer one raises PolarsError."""
    if not content:
        return pl.DataFrame(schema={f"column_{i + 1}": pl.String for i in range(width or 0)})
    return pl.read_csv(
        io.BytesIO(content),
        has_header=False,
        separator=delimiter,
        quote_char='"',
        infer_schema=False,
        schema=None if width is None else {f"column_{i + 1}": pl.String for i in range(width)},
        missing_columns="insert",
        extra_columns="raise" if strict else "ignore",
        truncate_ragged_lines=not strict,
    )


def _header_names(file_name: str, row: list[str]) -> list[str]:
    """segpipe's column names for the header's named cells (normalized, aliases resolved)."""
    names = [normalize_header(name or "") for name in row]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UploadRejected(file_name, f"header names column '{name}' twice")
        if name.startswith("_"):
            raise UploadRejected(file_name, f"column names may not start with '_' ('{name}')")
        seen.add(name)
    return headers.canonical_names(file_name, [cell or "" for cell in row], names)
