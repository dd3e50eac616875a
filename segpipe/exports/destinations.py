"""The `destinations:` of segments.yaml: where segments go, keyed and shaped how.

Only the `destinations:` key is read here; `segments:` (rule-based segments) belongs to the rule
engine and is ignored. Shape errors are raised at load time naming the destination; checks that
need the warehouse (segment names, fields) run in `resolve_pairs` / `check_fields`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

KEYS = ("email", "cons_id", "member_id", "external_id", "phone")
FORMATS = ("csv", "attentive")
MODES = ("mirror", "upsert")
ALL_SEGMENTS = "*"
# Destination names and Attentive domains become folder and file names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# Attentive's (and segpipe's own subscriber upload's) rule for segment names.
ATTENTIVE_SEGMENT_NAME = re.compile(r"^[A-Za-z0-9 _-]{1,64}$")
_ALLOWED = {"name", "key", "segments", "format", "fields", "domain", "mode"}


class DestinationError(ValueError):
    """A destination in segments.yaml that cannot be synced; the message names it."""


@dataclass(frozen=True)
class Destination:
    name: str
    key: str
    segments: tuple[str, ...]
    format: str = "csv"
    fields: tuple[str, ...] = ()
    domain: str | None = None
    mode: str = "mirror"

    @property
    def all_segments(self) -> bool:
        return ALL_SEGMENTS in self.segments

    @property
    def columns(self) -> tuple[str, ...]:
        """The CSV columns: the matching key first, then the chosen fields (no repeats)."""
        return (self.key, *[f for f in dict.fromkeys(self.fields) if f != self.key])


@dataclass(frozen=True)
class Pair:
    """One destination's copy of one segment."""

    destination: Destination
    segment_id: int
    segment: str
    audience: str

    @property
    def partition_key(self) -> str:
        return f"{self.destination.name}/{self.audience}"


def audience_of(segment_name: str) -> str:
    """The segment name with spaces as underscores (SPEC 6). Characters that would escape the
    export folder or are not allowed in a Dagster partition key (slashes, control characters,
    runs of dots) become underscores too, and a leading dot is kept from hiding the folder."""
    audience = re.sub(r"[\s/\\]|[\x00-\x1f]|\.{2,}", "_", segment_name.strip())
    return "_" + audience[1:] if audience.startswith(".") else audience


def load_destinations(path: Path) -> list[Destination]:
    """The destinations of segments.yaml at `path`; none when the file or the key is absent."""
    if not path.exists():
        return []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise DestinationError(f"{path.name}: not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise DestinationError(f"{path.name}: expected a mapping with `destinations:`")
    entries = document.get("destinations") or []
    if not isinstance(entries, list):
        raise DestinationError(f"{path.name}: `destinations:` must be a list")
    destinations = [_destination(position, entry) for position, entry in enumerate(entries, 1)]
    names = [d.name for d in destinations]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise DestinationError(f"{path.name}: destination names repeat: {', '.join(duplicates)}")
    return destinations


def _destination(position: int, entry) -> Destination:
    if not isinstance(entry, dict):
        raise DestinationError(f"destination #{position}: expected a mapping")
    name = str(entry.get("name") or "").strip()
    label = f"destination {name!r}" if name else f"destination #{position}"

    def fail(problem: str):
        raise DestinationError(f"{label}: {problem}")

    if not _NAME.match(name):
        fail("needs a `name` of letters, digits, '_', '-' or '.' (it names the export folder)")
    if unknown := sorted(set(entry) - _ALLOWED):
        fail(f"unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_ALLOWED))}")
    key = entry.get("key")
    if key not in KEYS:
        fail(f"unknown key {key!r}; one of {', '.join(KEYS)}")
    form = entry.get("format", "csv")
    if form not in FORMATS:
        fail(f"unknown format {form!r}; one of {', '.join(FORMATS)}")
    mode = entry.get("mode", "mirror")
    if mode not in MODES:
        fail(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    segments = entry.get("segments")
    if isinstance(segments, str):
        segments = [segments]
    if not segments or not all(isinstance(s, str) and s.strip() for s in segments):
        fail('`segments` must list segment names, or "*" for every segment')
    fields = entry.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        fail("`fields` must be a list of constituent column names")
    domain = entry.get("domain")
    if form == "attentive":
        if key not in ("phone", "email"):
            fail(f"attentive files carry a phone or an email, not {key!r}")
        if fields:
            fail("attentive files carry only the key and the segment name; remove `fields`")
        if not isinstance(domain, str) or not _DOMAIN.match(domain):
            fail("attentive needs a `domain` of lower-case letters, digits, '.' and '-'")
    elif domain is not None:
        fail("`domain` applies to the attentive format only")
    return Destination(
        name=name,
        key=key,
        segments=tuple(s.strip() for s in segments),
        format=form,
        fields=tuple(fields),
        domain=domain,
        mode=mode,
    )


def check_fields(con: duckdb.DuckDBPyConnection, destination: Destination) -> None:
    """Every field must be a constituents column (the core ones or an uploaded attribute)."""
    known = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'constituents'"
        ).fetchall()
    }
    if unknown := [f for f in destination.columns if f not in known]:
        raise DestinationError(
            f"destination {destination.name!r}: unknown field(s) {', '.join(unknown)}; "
            f"constituent columns are {', '.join(sorted(known))}"
        )


def resolve_pairs(con: duckdb.DuckDBPyConnection, destination: Destination) -> list[Pair]:
    """The segments `destination` receives, by name (case aside) or all of them for "*"."""
    segments = con.execute("SELECT segment_id, name FROM segments ORDER BY segment_id").fetchall()
    by_name = {name.lower(): (segment_id, name) for segment_id, name in segments}
    if destination.all_segments:
        chosen = segments
    else:
        missing = [s for s in destination.segments if s.lower() not in by_name]
        if missing:
            raise DestinationError(
                f"destination {destination.name!r}: unknown segment(s) {', '.join(missing)}"
            )
        chosen = list(dict.fromkeys(by_name[s.lower()] for s in destination.segments))
    pairs = [Pair(destination, sid, name, audience_of(name)) for sid, name in chosen]
    audiences: dict[str, str] = {}
    for pair in pairs:
        if (other := audiences.setdefault(pair.audience.lower(), pair.segment)) != pair.segment:
            raise DestinationError(
                f"destination {destination.name!r}: segments {other!r} and {pair.segment!r} "
                f"would share the export folder {pair.audience!r}; rename one"
            )
    return pairs


def configured_pairs(con: duckdb.DuckDBPyConnection, destinations: list[Destination]) -> list[Pair]:
    pairs = []
    for destination in destinations:
        check_fields(con, destination)
        pairs += resolve_pairs(con, destination)
    return pairs
