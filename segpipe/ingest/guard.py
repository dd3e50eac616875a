"""Limits a received file is held to before anything parses it, checked while streaming it once
in blocks (memory stays at one block, whatever the file holds), and the fingerprint of what the
file says rather than how it was wrapped.

- decoded size (after gzip) at most `MAX_FILE_BYTES`: a gzip bomb stops there;
- a physical line at most `MAX_LINE_BYTES`: a 2 GB line is refused after its first MiB;
- a cell at most `MAX_CELL_BYTES` (checked on the parsed rows by `check_cells`);
- a `.gz` file that is truncated or corrupted is refused with what is wrong with it.
Each can be changed for a deployment with the environment variable of the same name prefixed by
`SEGPIPE_` (e.g. `SEGPIPE_MAX_FILE_BYTES`).

The content fingerprint is the SHA-256 of the decoded text with a UTF-8 byte-order mark removed,
CRLF line endings as LF and a final line ending added when missing: the same rows re-sent
gzip-compressed, from Windows or from Excel (BOM) have the same content fingerprint.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from segpipe.ingest.errors import UploadRejected
from segpipe.ingest.receive import sha256_of

MAX_FILE_BYTES = 2 * 1024**3
MAX_LINE_BYTES = 1024**2
MAX_CELL_BYTES = 256 * 1024
_BLOCK = 512 * 1024  # smaller than a line may be: a longer line spans a block boundary
_BOM = b"\xef\xbb\xbf"


def limit(name: str, default: int) -> int:
    """A limit's value: `SEGPIPE_<name>` from the environment, else `default` (bytes)."""
    return int(os.environ.get(f"SEGPIPE_{name}", default))


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class Content:
    """What `inspect_content` learnt: the decoded size (bytes), the longest line (bytes) and the
    content fingerprint (hex SHA-256 of the normalized text)."""

    decoded_bytes: int
    longest_line: int
    sha256: str


def _blocks(path: Path) -> Iterator[bytes]:
    """The file's decoded bytes, a block at a time; a bad gzip file raises UploadRejected."""
    if not path.name.lower().endswith(".gz"):
        with path.open("rb") as file:
            while block := file.read(_BLOCK):
                yield block
        return
    try:
        with gzip.open(path, "rb") as file:
            while block := file.read(_BLOCK):
                yield block
    except EOFError:
        raise UploadRejected(path.name, "gzip file is truncated (it ends mid-stream)") from None
    except (OSError, zlib.error) as error:  # BadGzipFile is an OSError
        raise UploadRejected(path.name, f"not a valid gzip file ({error})") from None


class _Normalized:
    """SHA-256 of a stream with a leading BOM dropped and CRLF read as LF."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.started = False
        self.held_cr = False
        self.last = b""

    def update(self, block: bytes) -> None:
        if not self.started:
            block = block.removeprefix(_BOM)
            self.started = True
        if self.held_cr:
            block = b"\r" + block
        self.held_cr = block.endswith(b"\r")
        if self.held_cr:
            block = block[:-1]
        if block:
            self.digest.update(block.replace(b"\r\n", b"\n"))
            self.last = block[-1:]

    def hexdigest(self) -> str:
        if self.held_cr:
            self.digest.update(b"\r")
            self.last = b"\r"
        if self.last not in (b"\n", b""):
            self.digest.update(b"\n")
        return self.digest.hexdigest()


def fingerprints(path: Path) -> tuple[str, Content | UploadRejected]:
    """(the SHA-256 of the file's bytes, what `inspect_content` found or the rejection it
    raised). The bytes are hashed on a second thread while they are inspected (hashlib lets go
    of the GIL): the two passes over a big file take the time of one."""
    with ThreadPoolExecutor(1, thread_name_prefix="segpipe-sha256") as pool:
        hashing = pool.submit(sha256_of, path)
        try:
            content: Content | UploadRejected = inspect_content(path, hashing.result)
        except UploadRejected as rejection:
            content = rejection
        return hashing.result(), content


def inspect_content(path: Path, byte_sha256: Callable[[], str]) -> Content:
    """Stream the file at `path` once: the limits above, and its content fingerprint
    (`byte_sha256()`, the bytes' own, when the bytes are already in normal form). Raises
    UploadRejected naming the file and the limit it broke."""
    max_file = limit("MAX_FILE_BYTES", MAX_FILE_BYTES)
    max_line = limit("MAX_LINE_BYTES", MAX_LINE_BYTES)
    plain = not path.name.lower().endswith(".gz")
    normalized = None if plain else _Normalized()
    total, longest, run, line, first, last = 0, 0, 0, 1, b"", b""
    needs_rehash = False
    for block in _blocks(path):
        if not first:
            first = block[: len(_BOM)]
        total += len(block)
        if total > max_file:
            raise UploadRejected(
                path.name, f"file is larger than {_size(max_file)} once decoded (the limit)"
            )
        newline = block.find(b"\n")
        if newline >= 0:  # the line open before this block ends here
            _check_line(path.name, run + newline, line, max_line)
            longest = max(longest, run + newline)
            line += block.count(b"\n")
            run = len(block) - block.rfind(b"\n") - 1
        else:
            run += len(block)
        _check_line(path.name, run, line, max_line)
        needs_rehash = needs_rehash or b"\r" in block
        last = block[-1:]
        if normalized:
            normalized.update(block)
    longest = max(longest, run)
    if normalized:
        return Content(total, longest, normalized.hexdigest())
    if needs_rehash or first == _BOM or last not in (b"\n", b""):
        return Content(total, longest, _normalized_sha256(path))
    # Already in normal form: the bytes are the content.
    return Content(total, longest, byte_sha256())


def _check_line(file_name: str, length: int, line: int, max_line: int) -> None:
    if length > max_line:
        raise UploadRejected(
            file_name, f"line {line} is longer than {_size(max_line)} (the limit for one line)"
        )


def _normalized_sha256(path: Path) -> str:
    normalized = _Normalized()
    for block in _blocks(path):
        normalized.update(block)
    return normalized.hexdigest()


def check_cells(file_name: str, rows: pl.DataFrame, line_column: str) -> None:
    """Raise UploadRejected when a cell of `rows` (string columns and the `line_column` line
    numbers) is longer than MAX_CELL_BYTES, naming the first such line."""
    max_cell = limit("MAX_CELL_BYTES", MAX_CELL_BYTES)
    cells = [c for c, t in rows.schema.items() if t == pl.String and not c.startswith("_")]
    if not cells or rows.is_empty():
        return
    too_long = pl.any_horizontal(pl.col(cells).str.len_bytes() > max_cell)
    first = rows.filter(too_long).select(line_column).head(1)
    if first.height:
        raise UploadRejected(
            file_name,
            f"line {first.item()} has a value longer than {_size(max_cell)} (the limit for one "
            "value)",
        )
