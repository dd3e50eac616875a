"""SFTP delivery of a destination's latest sync: upload, rename, record (issue 21).

Attentive picks subscriber segment files up from an SFTP folder (`/uploads`); a csv destination's
receiver reads `<audience>/members.csv`, `adds.csv`, `removes.csv`. After a sync, the files of
that sync are uploaded with paramiko:
- each under a temporary name (`.<name>.partial`) in the target folder, then renamed over the
  final name (OpenSSH's posix-rename), so the receiver never reads half a file;
- the server's host key must be in the configured known_hosts file: an unknown or changed key
  refuses the connection (never paramiko's AutoAddPolicy);
- a broken connection is retried within the run (`attempts`, backoff doubling from
  `backoff_seconds`); what still failed is recorded `failed` and sent again by the next run;
- nothing the server already has is sent again: a file whose last delivery (in `deliveries`) has
  the same sha256 is skipped without connecting, and a file found on the server with the same
  size and sha256 (a rename done just before the connection broke) is recorded, not re-sent.

Every attempt leaves one `deliveries` row per file it settled: destination, file (the path on
the server), bytes, sha256, "at", status (`DeliveryStatus`), error.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from segpipe import attentive
from segpipe.config import DataDir
from segpipe.exports.destinations import Destination, SftpDelivery
from segpipe.exports.sync import FILES
from segpipe.ingest.normalize import mask_text
from segpipe.ingest.receive import sha256_of
from segpipe.vocabulary import ExportFormat
from segpipe.warehouse.sql import frame, registered

if TYPE_CHECKING:  # imported where a delivery connects: most runs deliver nothing
    import paramiko

PARTIAL = ".{name}.partial"


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    ALREADY_ON_SERVER = "already_on_server"  # same size and sha256 there: recorded, not sent
    FAILED = "failed"


# The server holds these bytes after either: a later run need not send them again.
HELD = (DeliveryStatus.DELIVERED, DeliveryStatus.ALREADY_ON_SERVER)


class DeliveryRefused(Exception):
    """A delivery that retrying cannot fix: unknown host key, missing key file or password."""


@dataclass(frozen=True)
class OutgoingFile:
    local: Path
    remote: str  # the path on the server
    bytes: int
    sha256: str


@dataclass
class DeliveryResult:
    """What one delivery of one destination did; `error` is masked and names the server."""

    destination: str
    address: str
    delivered: list[OutgoingFile] = field(default_factory=list)
    already_on_server: list[OutgoingFile] = field(default_factory=list)
    unchanged: list[OutgoingFile] = field(default_factory=list)  # last delivery had these bytes
    failed: list[OutgoingFile] = field(default_factory=list)
    attempts: int = 0
    error: str | None = None

    def metadata(self) -> dict:
        """Counts, the server's address and file names; never a row of a file."""
        return {
            "destination": self.destination,
            "address": self.address,
            "files_delivered": len(self.delivered),
            "files_already_on_server": len(self.already_on_server),
            "files_unchanged": len(self.unchanged),
            "files_failed": len(self.failed),
            "bytes_delivered": sum(f.bytes for f in self.delivered),
            "attempts": self.attempts,
            "error": self.error or "",
        }


def latest_sync_files(
    con: duckdb.DuckDBPyConnection, data: DataDir, destination: Destination
) -> list[OutgoingFile]:
    """The files of `destination`'s latest successful sync, with their paths on the server:
    attentive: `<path>/{domain}_subscriber_segment_{YYYYMMDD}_{n}.csv`; csv:
    `<path>/<audience>/members.csv`, `adds.csv`, `removes.csv` of every segment synced."""
    assert destination.deliver is not None
    rows = frame(
        con,
        'SELECT path, "at" FROM syncs WHERE destination = ? '
        'QUALIFY "at" = max("at") OVER () ORDER BY path',
        [destination.name],
    )
    if rows.is_empty():
        return []
    target = destination.deliver.path
    pairs: list[tuple[Path, str]] = []
    if destination.format == ExportFormat.ATTENTIVE:
        at: datetime = rows["at"][0]
        first = attentive.file_name(destination.domain, at, 1)
        pattern = first.removesuffix("1.csv") + "*.csv"
        folder = data.exports / destination.name
        pairs = [(p, posixpath.join(target, p.name)) for p in sorted(folder.glob(pattern))]
    else:
        for path in rows["path"]:
            audience = Path(path).name
            pairs += [
                (data.root / path / f"{name}.csv", posixpath.join(target, audience, f"{name}.csv"))
                for name in FILES
            ]
    return [
        OutgoingFile(local, remote, local.stat().st_size, sha256_of(local))
        for local, remote in pairs
        if local.is_file()
    ]


def last_delivered(con: duckdb.DuckDBPyConnection, destination: str) -> dict[str, str]:
    """Per file on the server, the sha256 of the bytes last put there."""
    held = ", ".join(f"'{s}'" for s in HELD)
    rows = con.execute(
        f"""
        SELECT file, sha256 FROM deliveries WHERE destination = ? AND status IN ({held})
        QUALIFY row_number() OVER (PARTITION BY file ORDER BY "at" DESC) = 1
        """,
        [destination],
    ).fetchall()
    return dict(rows)


def undelivered_diffs(con: duckdb.DuckDBPyConnection, destination: Destination) -> int:
    """Files the latest delivery of a csv `destination` could not send (0 for attentive or
    without `deliver`). Its sync waits for them: adds and removes are diffs against what the
    receiver was last sent, so a new sync would replace diffs the receiver never got. An
    attentive file is a full list; a new one supersedes the one that failed."""
    if destination.deliver is None or destination.format != ExportFormat.CSV:
        return 0
    # fetchall, not fetchone: duckdb 2.x keeps a half-fetched result open on the connection.
    return con.execute(
        """
        SELECT count(*) FROM deliveries WHERE destination = ? AND status = ?
          AND "at" = (SELECT max("at") FROM deliveries WHERE destination = ?)
        """,
        [destination.name, DeliveryStatus.FAILED.value, destination.name],
    ).fetchall()[0][0]


def deliver_destination(
    con: duckdb.DuckDBPyConnection,
    data: DataDir,
    destination: Destination,
    *,
    at: datetime,
    run_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryResult:
    """Upload the files of `destination`'s latest sync that the server does not hold yet, and
    record each in `deliveries`. Never raises for a network problem: the result says which
    files failed and why."""
    settings = destination.deliver
    assert settings is not None
    result = DeliveryResult(destination.name, settings.address)
    sent_before = last_delivered(con, destination.name)
    for outgoing in latest_sync_files(con, data, destination):
        unchanged = sent_before.get(outgoing.remote) == outgoing.sha256
        (result.unchanged if unchanged else result.failed).append(outgoing)
    if result.failed:  # not failed yet: waiting to be sent
        _transfer(settings, data.root, result, sleep)
        _record(con, result, at, run_id)
    return result


def _transfer(
    settings: SftpDelivery, root: Path, result: DeliveryResult, sleep: Callable[[float], None]
) -> None:
    """Send `result.failed` (the files still to send), moving each to delivered or
    already_on_server as it lands; retry a broken connection with backoff."""
    import paramiko

    for attempt in range(1, settings.attempts + 1):
        result.attempts = attempt
        try:
            with _session(settings, root) as sftp:
                while result.failed:
                    outgoing = result.failed[0]
                    if _already_there(sftp, outgoing):
                        result.already_on_server.append(outgoing)
                    else:
                        _put(sftp, outgoing)
                        result.delivered.append(outgoing)
                    result.failed.pop(0)
            result.error = None
            return
        # Errors no retry can fix (a changed host key, a refused login): fail at once.
        except (
            DeliveryRefused,
            paramiko.BadHostKeyException,
            paramiko.AuthenticationException,
        ) as error:
            result.error = _describe(settings, error)
            return
        except (paramiko.SSHException, OSError, EOFError) as error:
            result.error = _describe(settings, error)
            if attempt < settings.attempts:
                sleep(settings.backoff_seconds * 2 ** (attempt - 1))


def _describe(settings: SftpDelivery, error: BaseException) -> str:
    reason = str(error) or type(error).__name__
    return mask_text(f"{settings.address}: {reason}")


def _local_path(value: str, root: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def _refuse_unknown_host(known_hosts: Path) -> paramiko.MissingHostKeyPolicy:
    """A server whose key is not in known_hosts is refused (never added, never trusted)."""
    import paramiko

    class RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            raise DeliveryRefused(
                f"host key of {hostname} ({key.get_name()}) is not in {known_hosts}; "
                f"check its fingerprint with the server's owner, then add it "
                f"(ssh-keyscan) to that file"
            )

    return RefuseUnknownHost()


@contextmanager
def _session(settings: SftpDelivery, root: Path) -> Iterator[paramiko.SFTPClient]:
    import paramiko

    known_hosts = _local_path(settings.known_hosts, root)
    if not known_hosts.is_file():
        raise DeliveryRefused(f"known_hosts file {known_hosts} not found")
    key_file = _local_path(settings.key_file, root) if settings.key_file else None
    if key_file is not None and not key_file.is_file():
        raise DeliveryRefused(f"key_file {key_file} not found")
    password = os.environ.get(settings.password_env) if settings.password_env else None
    if settings.password_env and password is None:
        raise DeliveryRefused(f"environment variable {settings.password_env} is not set")
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(_refuse_unknown_host(known_hosts))
    try:
        client.connect(
            settings.host,
            port=settings.port,
            username=settings.username,
            key_filename=str(key_file) if key_file else None,
            password=password,
            look_for_keys=False,
            allow_agent=False,
            timeout=settings.timeout_seconds,
            banner_timeout=settings.timeout_seconds,
            auth_timeout=settings.timeout_seconds,
        )
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(settings.timeout_seconds)
        yield sftp
    finally:
        client.close()


def _makedirs(sftp: paramiko.SFTPClient, folder: str) -> None:
    path = "/"
    for part in folder.strip("/").split("/"):
        path = posixpath.join(path, part)
        try:
            sftp.stat(path)
        except FileNotFoundError:
            sftp.mkdir(path)


def _put(sftp: paramiko.SFTPClient, outgoing: OutgoingFile) -> None:
    folder, name = posixpath.split(outgoing.remote)
    _makedirs(sftp, folder)
    partial = posixpath.join(folder, PARTIAL.format(name=name))
    sftp.put(str(outgoing.local), partial, confirm=True)  # confirm: the size on the server
    sftp.posix_rename(partial, outgoing.remote)


def _already_there(sftp: paramiko.SFTPClient, outgoing: OutgoingFile) -> bool:
    """The server has a file by that name with the same size and sha256."""
    try:
        size = sftp.stat(outgoing.remote).st_size
    except FileNotFoundError:
        return False
    if size != outgoing.bytes:
        return False
    digest = hashlib.sha256()
    with sftp.open(outgoing.remote, "rb") as remote:
        remote.prefetch(size)
        while chunk := remote.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == outgoing.sha256


def _record(con: duckdb.DuckDBPyConnection, result: DeliveryResult, at, run_id) -> None:
    settled = [
        (f, status, error)
        for files, status, error in (
            (result.delivered, DeliveryStatus.DELIVERED, None),
            (result.already_on_server, DeliveryStatus.ALREADY_ON_SERVER, None),
            (result.failed, DeliveryStatus.FAILED, result.error),
        )
        for f in files
    ]
    rows = pl.DataFrame(
        {
            "destination": [result.destination] * len(settled),
            "file": [f.remote for f, _, _ in settled],
            "bytes": [f.bytes for f, _, _ in settled],
            "sha256": [f.sha256 for f, _, _ in settled],
            "status": [str(status) for _, status, _ in settled],
            "error": [error for _, _, error in settled],
            "attempts": [result.attempts] * len(settled),
        },
        schema={
            "destination": pl.String,
            "file": pl.String,
            "bytes": pl.Int64,
            "sha256": pl.String,
            "status": pl.String,
            "error": pl.String,
            "attempts": pl.Int64,
        },
    )
    with registered(con, "_delivery_rows", rows):
        con.execute(
            'INSERT INTO deliveries (destination, file, bytes, sha256, "at", status, error, '
            "attempts, address, run_id) "
            "SELECT destination, file, bytes, sha256, ?, status, error, attempts, ?, ? "
            "FROM _delivery_rows",
            [at, result.address, run_id],
        )
