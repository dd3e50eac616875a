"""The `destinations:` of segments.yaml: where segments go, keyed and shaped how.

Only the `destinations:` key is read here; `segments:` (rule-based segments) belongs to the rule
engine and is ignored. Shape errors are raised at load time naming the destination; checks that
need the warehouse (segment names, fields) run in `resolve_pairs` / `check_fields`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import yaml

from segpipe import attentive
from segpipe.notify.settings import WarningsError, WarningSettings, parse_warnings
from segpipe.safe_yaml import load_yaml
from segpipe.vocabulary import Channel, ExportFormat, SyncMode
from segpipe.warehouse.catalog import constituent_columns

KEYS = ("email", "cons_id", "member_id", "external_id", "phone")
ALL_SEGMENTS = "*"
# Destination names and Attentive domains become folder and file names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ALLOWED = {
    *("name", "key", "segments", "format", "fields", "domain", "mode", "channel"),
    *("deliver", "warnings"),  # SFTP delivery and warnings
}
_SFTP_REQUIRED = {"host", "username", "path"}
_SFTP_ALLOWED = _SFTP_REQUIRED | {
    "port",
    "key_file",
    "password_env",
    "known_hosts",
    "attempts",
    "backoff_seconds",
    "timeout_seconds",
}
# An audience folder name's length limit: file systems allow 255 bytes; Dagster partition keys
# and the paths under it need room too.
MAX_AUDIENCE_BYTES = 200
Warn = Callable[[str], None]


@dataclass(frozen=True)
class MissingSegments:
    """Segments a destination names in `segments:` that do not exist: that destination's sync
    of them is not done (exit 2, as a held sync), its other segments are."""

    destination: str
    segments: tuple[str, ...]

    def __str__(self) -> str:
        names = ", ".join(repr(s) for s in self.segments)
        return (
            f"destination {self.destination!r}: segment(s) {names} not found (deleted, or not "
            "made yet), not synced (any other segments it names were): fix or remove the name "
            "in segments.yaml `segments:`"
        )


Missing = Callable[[MissingSegments], None]


def default_channel(key: str) -> Channel:
    """`sms` for destinations keyed on phone, `email` for every other key (emails and ids:
    a list keyed on an id is a mailing list in the anchors' ESPs). An attentive destination
    follows its identifier the same way."""
    return Channel.SMS if key == "phone" else Channel.EMAIL


class DestinationError(ValueError):
    """A destination in segments.yaml that cannot be synced; the message names it."""


@dataclass(frozen=True)
class SftpDelivery:
    """Where a destination's files are uploaded after each sync (`deliver: {sftp: ...}`).

    `key_file` and `known_hosts` are paths, relative ones from the data directory;
    `password_env` names the environment variable holding the password (never the password
    itself, which would sit in segments.yaml). `attempts` connections are tried within a run,
    `backoff_seconds` apart, doubling each time; `timeout_seconds` bounds each network wait."""

    host: str
    username: str
    path: str
    port: int = 22
    key_file: str | None = None
    password_env: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    attempts: int = 3
    backoff_seconds: float = 2.0
    timeout_seconds: float = 30.0

    @property
    def address(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}{self.path}"


@dataclass(frozen=True)
class Destination:
    name: str
    key: str
    segments: tuple[str, ...]
    format: ExportFormat = ExportFormat.CSV
    fields: tuple[str, ...] = ()
    domain: str | None = None
    mode: SyncMode = SyncMode.MIRROR
    channel: Channel = Channel.EMAIL
    deliver: SftpDelivery | None = None
    warnings: WarningSettings | None = None

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
    domain: str | None = None  # a subscriber segment's Attentive domain
    # The destination no longer receives this segment (deleted, or out of its `segments:`): a
    # mirror sync sends it empty, removing everyone it was last sent, once (see retired_pairs).
    retired: bool = False
    # Retired segments exported to this pair's folder: their baseline is this pair's too, so
    # the destination's audience of that name gets one diff.
    former_ids: tuple[int, ...] = ()

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
        document = load_yaml(path.read_text(encoding="utf-8")) or {}
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
    form = entry.get("format", ExportFormat.CSV)
    if form not in tuple(ExportFormat):
        fail(f"unknown format {form!r}; one of {', '.join(ExportFormat)}")
    mode = entry.get("mode", SyncMode.MIRROR)
    if mode not in tuple(SyncMode):
        fail(f"unknown mode {mode!r}; one of {', '.join(SyncMode)}")
    segments = entry.get("segments")
    if isinstance(segments, str):
        segments = [segments]
    if not segments or not all(isinstance(s, str) and s.strip() for s in segments):
        fail('`segments` must list segment names, or "*" for every segment')
    fields = entry.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        fail("`fields` must be a list of constituent column names")
    channel = entry.get("channel", default_channel(key))
    if channel not in tuple(Channel):  # a tuple: a YAML list is refused, not unhashable
        fail(f"unknown channel {channel!r}; one of {', '.join(Channel)}")
    domain = entry.get("domain")
    if form == ExportFormat.ATTENTIVE:
        if key not in ("phone", "email"):
            fail(f"attentive files carry a phone or an email, not {key!r}")
        if fields:
            fail("attentive files carry only the key and the segment name; remove `fields`")
        if not isinstance(domain, str) or not attentive.DOMAIN.match(domain):
            fail("attentive needs a `domain` of lower-case letters, digits, '.' and '-'")
    elif domain is not None:
        fail("`domain` applies to the attentive format only")
    try:
        warnings = parse_warnings(entry.get("warnings"), label)
    except WarningsError as error:
        raise DestinationError(str(error)) from None
    return Destination(
        name=name,
        key=key,
        segments=tuple(s.strip() for s in segments),
        format=ExportFormat(form),
        fields=tuple(fields),
        domain=domain,
        mode=SyncMode(mode),
        channel=Channel(channel),
        deliver=_sftp(entry.get("deliver"), fail),
        warnings=warnings,
    )


def _sftp(entry, fail) -> SftpDelivery | None:
    """`deliver: {sftp: {host, port, username, key_file | password_env, path, known_hosts}}`."""
    if entry is None:
        return None
    if not isinstance(entry, dict) or set(entry) != {"sftp"} or not isinstance(entry["sftp"], dict):
        fail("`deliver` takes `sftp: {host, username, path, key_file or password_env, ...}`")
    sftp = entry["sftp"]
    if missing := sorted(_SFTP_REQUIRED - set(sftp)):
        fail(f"deliver.sftp needs {', '.join(missing)}")
    if unknown := sorted(set(sftp) - _SFTP_ALLOWED):
        fail(f"deliver.sftp: unknown setting(s) {', '.join(unknown)}")
    if ("key_file" in sftp) == ("password_env" in sftp):
        fail("deliver.sftp needs one of `key_file` or `password_env`")
    if not str(sftp["path"]).startswith("/"):
        fail("deliver.sftp.path must be an absolute folder on the server, like /uploads")
    try:
        numbers = {
            "port": int(sftp.get("port", 22)),
            "attempts": int(sftp.get("attempts", 3)),
            "backoff_seconds": float(sftp.get("backoff_seconds", 2.0)),
            "timeout_seconds": float(sftp.get("timeout_seconds", 30.0)),
        }
    except (TypeError, ValueError):
        fail("deliver.sftp: port, attempts, backoff_seconds and timeout_seconds are numbers")
    if numbers["attempts"] < 1 or not 0 < numbers["port"] < 65536:
        fail("deliver.sftp: attempts must be 1 or more, port between 1 and 65535")
    return SftpDelivery(
        host=str(sftp["host"]),
        username=str(sftp["username"]),
        path=str(sftp["path"]).rstrip("/") or "/",
        key_file=sftp.get("key_file"),
        password_env=sftp.get("password_env"),
        known_hosts=str(sftp.get("known_hosts", "~/.ssh/known_hosts")),
        **numbers,
    )


def check_fields(con: duckdb.DuckDBPyConnection, destination: Destination) -> None:
    """Every field must be a constituents column (the core ones or an uploaded attribute)."""
    known = set(constituent_columns(con))
    if unknown := [f for f in destination.columns if f not in known]:
        raise DestinationError(
            f"destination {destination.name!r}: unknown field(s) {', '.join(unknown)}; "
            f"constituent columns are {', '.join(sorted(known))}"
        )


def audience_of_segment(name: str, domain: str | None) -> str:
    """A subscriber segment's audience carries its domain (`shop_VIP`): the same name from two
    Attentive accounts is two segments, exported side by side."""
    return audience_of(f"{domain}_{name}" if domain else name)


def resolve_pairs(
    con: duckdb.DuckDBPyConnection,
    destination: Destination,
    warn: Warn | None = None,
    missing: Missing | None = None,
) -> list[Pair]:
    """The segments `destination` receives, by name (case aside; a subscriber segment name
    that two domains carry names both) or all of them for "*"; an attentive destination only
    those its account may hold (`_for_account`).

    A name no segment has (deleted, not made yet, mistyped) is left out and `missing` hears of
    it: as Census and Hightouch fail only the sync whose model is gone, the destination's other
    segments and the other destinations still sync.

    A segment whose export folder would be another's (`VIP list` and `VIP_list`), or whose name
    is too long for a folder name (over MAX_AUDIENCE_BYTES in UTF-8), is left out and
    `warn(message)` says so: one bad name never stops the other segments' syncs."""
    segments = con.execute(
        "SELECT segment_id, name, domain FROM segments ORDER BY segment_id"
    ).fetchall()
    by_name: dict[str, list[tuple]] = {}
    for segment in segments:
        by_name.setdefault(segment[1].lower(), []).append(segment)
    named = [s for s in destination.segments if s != ALL_SEGMENTS]
    # A name beside "*" adds nothing, but a misspelled one is still said (not silently ignored).
    if gone := [s for s in named if s.lower() not in by_name]:
        (missing or (lambda found: None))(MissingSegments(destination.name, tuple(gone)))
    if destination.all_segments:
        chosen = _for_account(destination, segments)
    else:
        chosen = []
        for name in destination.segments:
            if name in gone:
                continue
            if not (mine := _for_account(destination, by_name[name.lower()])):
                raise _other_accounts(destination, name, by_name[name.lower()])
            chosen += mine
        chosen = list(dict.fromkeys(chosen))
    pairs = [
        Pair(destination, sid, name, audience_of_segment(name, domain), domain)
        for sid, name, domain in chosen
    ]
    return _exportable(destination, pairs, warn or (lambda message: None))


def _for_account(destination: Destination, segments: list[tuple]) -> list[tuple]:
    """The (segment_id, name, domain) rows `destination` may be sent. A subscriber segment is
    its domain's Attentive account's (SPEC 2, one account per domain): an attentive destination
    gets its own domain's and the segments of no domain (rules, manual lists, interests), never
    another account's subscribers, who never subscribed to it. Other formats get every one."""
    if destination.domain is None:
        return segments
    return [s for s in segments if s[2] is None or s[2] == destination.domain]


def _other_accounts(destination: Destination, name: str, segments: list[tuple]) -> DestinationError:
    """Refused rather than skipped: the name asks for people of another Attentive account, a
    consent breach if sent, and a skip would leave the list silently missing from every sync."""
    domains = sorted({s[2] for s in segments})
    return DestinationError(
        f"destination {destination.name!r}: segment {name!r} is a subscriber segment of "
        f"domain{'s' * (len(domains) > 1)} {', '.join(domains)}, not of this destination's "
        f"domain {destination.domain}; "
        "one Attentive account per domain: remove it from `segments`"
    )


def _exportable(destination: Destination, pairs: list[Pair], warn: Warn) -> list[Pair]:
    """`pairs` without those whose folder name is too long or taken by an earlier segment."""
    kept, audiences = [], {}
    for pair in pairs:
        label = f"destination {destination.name!r}: segment {pair.segment[:80]!r}"
        if len(pair.audience.encode()) > MAX_AUDIENCE_BYTES:
            warn(
                f"{label} not exported: its name is longer than {MAX_AUDIENCE_BYTES} bytes, "
                "too long for a folder name; rename it"
            )
        elif (other := audiences.setdefault(pair.audience.lower(), pair.segment)) != pair.segment:
            warn(
                f"{label} not exported: segment {other!r} already exports to the folder "
                f"{pair.audience!r}; rename one of them"
            )
        else:
            kept.append(pair)
    return kept


def configured_pairs(
    con: duckdb.DuckDBPyConnection,
    destinations: list[Destination],
    warn: Warn | None = None,
    missing: Missing | None = None,
) -> list[Pair]:
    """Every destination's pairs, with the retired ones its next sync still owes a removal
    (a deleted segment a destination still names among them); `missing` hears of the names
    no segment has (resolve_pairs)."""
    pairs = []
    for destination in destinations:
        check_fields(con, destination)
        found = resolve_pairs(con, destination, warn, missing)
        pairs += retired_pairs(con, destination, found)
    return pairs


def retired_pairs(
    con: duckdb.DuckDBPyConnection, destination: Destination, pairs: list[Pair]
) -> list[Pair]:
    """`pairs` plus the segments a mirror `destination` still holds members of (its baseline,
    sync_members) that are not among them: deleted, or no longer in its `segments:`. Each is
    named and placed as its latest sync left it, and retired: its next sync removes everyone
    (Hightouch/Census mirror semantics), after which it has no baseline and is gone. A retired
    segment whose folder a current pair exports to is folded into that pair (`former_ids`)."""
    if destination.mode != SyncMode.MIRROR:
        return pairs  # an upsert destination is never told to remove anyone
    held = con.execute(
        """
        SELECT s.segment_id, s.segment, s.path FROM syncs s
        WHERE s.destination = ? AND s.segment_id IN
              (SELECT segment_id FROM sync_members WHERE destination = ?)
        QUALIFY row_number() OVER (PARTITION BY s.segment_id ORDER BY s."at" DESC) = 1
        ORDER BY s.segment_id
        """,
        [destination.name, destination.name],
    ).fetchall()
    by_folder = {p.audience.lower(): p for p in pairs}
    current = {p.segment_id for p in pairs}
    for segment_id, segment, path in held:
        if segment_id in current:
            continue
        audience = Path(path).name
        pair = by_folder.get(audience.lower()) or Pair(
            destination, segment_id, segment, audience, retired=True
        )
        if pair.segment_id != segment_id:
            pair = replace(pair, former_ids=(*pair.former_ids, segment_id))
        by_folder[audience.lower()] = pair
    return list(by_folder.values())
