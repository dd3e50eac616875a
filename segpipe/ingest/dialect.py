"""A received file's dialect, detected once: encoding, byte-order mark, delimiter, line ending,
Excel's `sep=` line (SPEC section 2).

Encodings: UTF-8 (with or without BOM) and UTF-16 with a BOM are read; anything else is refused
naming the likely encoding (charset-normalizer's guess) and the fix. The delimiter and line
ending come from DuckDB's CSV sniffer (`sniff_csv`) over the head of the file; Excel's `sep=X`
first line, when present, names the delimiter itself.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import re
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import charset_normalizer
import duckdb

from segpipe.ingest.errors import UploadRejected

# The head of the file whose encoding is checked, and the part of it DuckDB's sniffer reads
# (some thousand lines: enough to be sure, little enough to cost milliseconds).
SAMPLE_BYTES = 1024**2
SNIFF_BYTES = 256 * 1024
# Delimiters spreadsheets and CRM exports write (comma, semicolon in European locales, tab for
# "Unicode Text" and TSV, pipe); the sniffer's answer is kept only when it is one of them.
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# Characters DuckDB would read as a glob in a path: a file named with one is sniffed from a
# temporary copy, never in place.
_GLOB = re.compile(r"[*?\[\]{}]")
SEP_LINE = re.compile(rb"^sep=(.)(\r\n|\r|\n)", re.IGNORECASE)
# When charset-normalizer finds several code pages that decode the bytes alike, the one a
# spreadsheet most likely wrote is named (Excel on Windows, then on a Mac).
_LIKELY_FIRST = ["cp1252", "mac_roman", "cp1251", "latin_1"]
_ENCODING_NAMES = {
    "cp1252": "Windows-1252",
    "cp1250": "Windows-1250",
    "cp1251": "Windows-1251",
    "mac_roman": "Mac Roman",
    "latin_1": "ISO-8859-1 (Latin-1)",
    "utf_16_le": "UTF-16 without a byte-order mark",
    "utf_16_be": "UTF-16 without a byte-order mark",
    "utf_16": "UTF-16 without a byte-order mark",
    "shift_jis": "Shift JIS",
    "cp932": "Shift JIS",
    "gb18030": "GB18030",
    "big5": "Big5",
}
SAVE_AS_UTF8 = "save it as CSV UTF-8 (Excel: Save As > CSV UTF-8) and upload it again"


class Encoding(StrEnum):
    UTF8 = "UTF-8"
    UTF8_BOM = "UTF-8 with BOM"
    UTF16_LE_BOM = "UTF-16LE with BOM"
    UTF16_BE_BOM = "UTF-16BE with BOM"


class LineEnding(StrEnum):
    LF = "LF"
    CRLF = "CRLF"
    CR = "CR"


_BOMS = [
    (codecs.BOM_UTF8, Encoding.UTF8_BOM),
    (codecs.BOM_UTF16_LE, Encoding.UTF16_LE_BOM),
    (codecs.BOM_UTF16_BE, Encoding.UTF16_BE_BOM),
]
TRANSCODED = {Encoding.UTF16_LE_BOM: "utf-16-le", Encoding.UTF16_BE_BOM: "utf-16-be"}
_SNIFFED_ENDINGS = {"\\n": LineEnding.LF, "\\r\\n": LineEnding.CRLF, "\\r": LineEnding.CR}


@dataclass(frozen=True)
class Dialect:
    """How a file is written. The quote is always `"` doubled inside quoted values (RFC 4180)."""

    encoding: Encoding
    delimiter: str
    line_ending: LineEnding
    sep_line: bool = False  # Excel's `sep=X` first line: skipped, its line still counted
    gzip: bool = False

    def metadata(self) -> dict[str, str]:
        """What a person reads in the upload's metadata: names, never file content."""
        return {
            "encoding": str(self.encoding),
            "delimiter": DELIMITERS[self.delimiter],
            "line_ending": str(self.line_ending),
            "excel_sep_line": "yes" if self.sep_line else "no",
            "compression": "gzip" if self.gzip else "none",
        }


def utf8_content(file_name: str, payload: bytes, encoding: Encoding) -> bytes:
    """The file's content as UTF-8 bytes without BOM; UploadRejected naming the line and the
    likely encoding when bytes past the head are not UTF-8."""
    payload = payload.removeprefix(bom_of(encoding))
    if encoding in TRANSCODED:
        try:
            return payload.decode(TRANSCODED[encoding]).encode("utf-8")
        except UnicodeDecodeError:
            raise UploadRejected(file_name, f"not valid {encoding}; {SAVE_AS_UTF8}") from None
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise not_utf8(file_name, payload, error) from None
    return payload


def bom_of(encoding: Encoding) -> bytes:
    """The byte-order mark a file in `encoding` starts with (empty for plain UTF-8)."""
    return next((bom for bom, known in _BOMS if known == encoding), b"")


def not_utf8(file_name: str, payload: bytes, error: UnicodeDecodeError, first_line: int = 1):
    """The rejection of bytes that are not UTF-8: the line, the likely encoding, the fix."""
    before = payload[: error.start]
    breaks = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n")  # LF, CR, CRLF
    line = first_line + breaks
    guessed = likely_encoding(payload[max(0, error.start - SAMPLE_BYTES // 2) :][:SAMPLE_BYTES])
    looks = f"looks like {guessed}; " if guessed else ""
    return UploadRejected(file_name, f"not valid UTF-8 (line {line}): {looks}{SAVE_AS_UTF8}")


def likely_encoding(sample: bytes) -> str | None:
    """charset-normalizer's best guess for `sample`, named as a spreadsheet user knows it."""
    best = charset_normalizer.from_bytes(sample).best()
    if best is None:
        return None
    alike = [codecs.lookup(name).name.replace("-", "_") for name in best.could_be_from_charset]
    chosen = next((name for name in _LIKELY_FIRST if name in alike), best.encoding)
    chosen = codecs.lookup(chosen).name.replace("-", "_")
    return _ENCODING_NAMES.get(chosen, chosen)


def head_of(path: Path, size: int = SAMPLE_BYTES) -> bytes:
    """The first `size` bytes of the file's content (gzip unwrapped)."""
    if path.name.lower().endswith(".gz"):
        try:
            with gzip.open(path, "rb") as file:
                return file.read(size)
        except (OSError, EOFError) as error:
            raise UploadRejected(path.name, f"not a valid gzip file ({error})") from None
    with path.open("rb") as file:
        return file.read(size)


def detect(path: Path) -> Dialect:
    """The dialect of the file at `path`, from its head; UploadRejected when the file is empty
    or in an encoding segpipe does not read."""
    head = head_of(path)
    whole = not path.name.lower().endswith(".gz") and len(head) < SAMPLE_BYTES
    return detect_bytes(path.name, head, path if whole else None)


def detect_bytes(file_name: str, head: bytes, whole_file: Path | None = None) -> Dialect:
    """The dialect of a file whose content (gzip unwrapped) starts with `head`: the encoding
    from its BOM, checked over the head; Excel's `sep=` line; delimiter and line ending from
    DuckDB's sniffer. UploadRejected: empty, another encoding, a `sep=` of another delimiter.
    `whole_file`: the file on disk when `head` is all of it, as stored."""
    encoding = next((known for bom, known in _BOMS if head.startswith(bom)), Encoding.UTF8)
    head = head.removeprefix(bom_of(encoding))
    text = _head_text(file_name, head, encoding)
    if not text.strip():
        raise UploadRejected(file_name, "file is empty")
    sep = SEP_LINE.match(text)
    if sep:
        text = text[sep.end() :]
    # Plain UTF-8 and no `sep=` line: the text to sniff is the file's bytes as stored.
    as_stored = whole_file if encoding == Encoding.UTF8 and not sep else None
    delimiter, ending = _sniffed(text, as_stored)
    if sep:
        hinted = sep.group(1).decode("utf-8", "replace")
        if hinted not in DELIMITERS:
            raise UploadRejected(
                file_name, "line 1 (sep=) names a delimiter other than comma, semicolon, tab, pipe"
            )
        _check_hint(file_name, hinted, delimiter, text)
        delimiter = hinted
    return Dialect(
        encoding=encoding,
        delimiter=delimiter,
        line_ending=ending,
        sep_line=bool(sep),
        gzip=file_name.lower().endswith(".gz"),
    )


def _check_hint(file_name: str, hinted: str, sniffed: str, text: bytes) -> None:
    """UploadRejected when Excel's `sep=` line names a delimiter the header (line 2) does not
    use while it uses the one the sniffer found: read the hinted way, every row would be one
    column, and the file rejected for a missing column instead of for its wrong first line."""
    header = re.split(rb"\r\n|\r|\n", text, maxsplit=1)[0]
    if hinted != sniffed and hinted.encode() not in header and sniffed.encode() in header:
        raise UploadRejected(
            file_name,
            f"line 1 (Excel's sep= line) says the delimiter is {DELIMITERS[hinted]}, but the "
            f"header on line 2 is separated by {DELIMITERS.get(sniffed, repr(sniffed))}: remove "
            "the sep= line or correct it",
        )


def _head_text(file_name: str, head: bytes, encoding: Encoding) -> bytes:
    """The head as UTF-8 bytes; refuses other encodings (a cut last character is fine)."""
    if encoding in TRANSCODED:
        even = head[: len(head) // 2 * 2]
        return codecs.getincrementaldecoder(TRANSCODED[encoding])("replace").decode(even).encode()
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as error:
        raise not_utf8(file_name, head, error) from None
    # UTF-16 without a BOM is valid UTF-8 full of NUL bytes: name it rather than read it.
    if head.count(b"\x00") > len(head) // 4:
        guessed = likely_encoding(head) or "UTF-16 without a byte-order mark"
        raise UploadRejected(file_name, f"not UTF-8: looks like {guessed}; {SAVE_AS_UTF8}")
    return head


@functools.cache
def _sniffer() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB for sniffing: opening one per file would cost more than the sniff
    (README, Performance); a cursor per sniff costs nothing."""
    return duckdb.connect()


def _sniffed(text: bytes, as_stored: Path | None = None) -> tuple[str, LineEnding]:
    """Delimiter and line ending by DuckDB's sniffer over the head's first complete lines.
    `as_stored`: a file whose bytes are `text`, sniffed in place when the sample is all of it
    (a small file: no temporary copy to write)."""
    whole = len(text) <= SNIFF_BYTES
    text = text[:SNIFF_BYTES]
    cut = max(text.rfind(b"\n"), text.rfind(b"\r"))
    sample = text[: cut + 1] if 0 <= cut < len(text) - 1 else text
    in_place = as_stored is not None and not _GLOB.search(str(as_stored))
    if in_place and whole and len(sample) == len(text):
        return _sniff_file(as_stored, sample)
    with tempfile.NamedTemporaryFile(suffix=".csv") as file:
        file.write(sample)
        file.flush()
        return _sniff_file(Path(file.name), sample)


def _sniff_file(path: Path, sample: bytes) -> tuple[str, LineEnding]:
    """`_sniffed` over the file at `path`, whose content is `sample`."""
    with _sniffer().cursor() as con:
        try:
            delimiter, ending = con.execute(
                "SELECT Delimiter, NewLineDelimiter FROM sniff_csv(?, header = false, "
                "all_varchar = true, ignore_errors = true, quote = '\"', escape = '\"')",
                [str(path)],
            ).fetchone()
        except duckdb.Error:
            # No consistent dialect in the head (an unclosed quote, say): the reader then
            # names the line at fault; the first line still tells the delimiter.
            delimiter, ending = None, None
    return (
        _checked_delimiter(delimiter, sample),
        _SNIFFED_ENDINGS.get(ending) or _first_line_ending(sample),
    )


def _checked_delimiter(sniffed: str, sample: bytes) -> str:
    """The sniffer's delimiter when the first line holds it; else the candidate the first line
    holds most (a ragged or unclosed line in a small file can mislead the sniffer), else comma.
    """
    lines = re.finditer(rb"[^\r\n]+", sample)
    first = next((line.group() for line in lines if line.group().strip()), b"")
    first = re.sub(rb'"(?:[^"]|"")*"', b"", first).decode("utf-8", "replace")
    if sniffed in DELIMITERS and sniffed in first:
        return sniffed
    counts = {candidate: first.count(candidate) for candidate in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _first_line_ending(text: bytes) -> LineEnding:
    found = [i for i in (text.find(b"\r"), text.find(b"\n")) if i >= 0]
    at = min(found, default=-1)
    if at < 0 or text[at : at + 1] == b"\n":
        return LineEnding.LF
    return LineEnding.CRLF if text[at : at + 2] == b"\r\n" else LineEnding.CR
