"""Take files out of the inbox into the archive, each with its upload_id: the first thing that
happens to any file, so nothing received is ever lost.

What is taken, and when (the sender's side of it is in the README):
- only regular files: a symlink, device, FIFO or folder is never opened; it is moved out of the
  inbox to `rejected/not-regular/` (the link itself, not what it points to) and reported once;
- only settled files: unchanged (modification time) for the settle interval, `SEGPIPE_SETTLE_
  SECONDS` (default 2 s), so a file still being written is left for a later look;
- names a sender uses while writing (`.part`, `.tmp`, `.filepart`, `.crdownload`, `~`, a
  leading dot) are never taken: write under one of them, then rename;
- the move is a `rename` within one file system; across file systems the bytes are copied,
  fsynced, checked against the source's SHA-256, and only then is the inbox file removed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from segpipe.config import DataDir
from segpipe.ingest.masking import display_name

# What SFTP clients and editors write while a file is still arriving.
_IN_PROGRESS = re.compile(r"^\.|(\.(part|tmp|filepart|crdownload)|~)$", re.I)
SETTLE_ENV = "SEGPIPE_SETTLE_SECONDS"
SETTLE_SECONDS = 2.0
NOT_REGULAR = "not-regular"


def settle_seconds() -> float:
    """How long a file must be unchanged before it is taken (SEGPIPE_SETTLE_SECONDS, seconds)."""
    return float(os.environ.get(SETTLE_ENV, SETTLE_SECONDS))


@dataclass(frozen=True)
class ReceivedFile:
    upload_id: str
    path: Path

    @property
    def file_name(self) -> str:
        return self.path.name

    @property
    def received_at(self) -> datetime:
        return datetime.fromtimestamp(self.path.stat().st_mtime, UTC).replace(tzinfo=None)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def upload_id_for(path: Path) -> str:
    """Sorts by modification time, then the shown name, and reads well in the Dagster UI, where
    it is the partition key: so it is made from the display name (masked before it is cut, or
    a cut number would escape the mask). Files are applied by `arrival_key` (the name as
    received breaks a tie), which these ids follow except among names that mask alike."""
    stamp = datetime.fromtimestamp(path.stat().st_mtime_ns / 1e9, UTC)
    slug = re.sub(r"[^a-z0-9._-]+", "_", display_name(path.name).lower())[:60]
    return f"{stamp:%Y%m%d-%H%M%S-%f}-{slug}-{sha256_of(path)[:8]}"


def arrival_key(path: Path) -> tuple[int, str]:
    """Modification time, then name (SPEC section 3); the archive keeps both as received."""
    return path.stat().st_mtime_ns, path.name


def arrival_order(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=arrival_key)


@dataclass
class InboxLook:
    """One look at the inbox: the files taken into the archive, the entries refused (name,
    problem) and the names of files not settled yet (left where they are)."""

    received: list[ReceivedFile] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)


def _kind_of_entry(mode: int) -> str | None:
    """None for a regular file, else what the entry is."""
    if stat.S_ISREG(mode):
        return None
    for test, what in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "a device"


def _refuse(data: DataDir, path: Path, what: str) -> tuple[str, str]:
    """Move a non-regular entry out of the inbox, unopened (rename moves the entry itself)."""
    folder = data.rejected / NOT_REGULAR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    os.rename(path, folder / f"{stamp}-{path.name}")
    return path.name, f"{what}, not a regular file: never read (moved to rejected/{NOT_REGULAR}/)"


def move_verified(path: Path, target: Path) -> None:
    """`rename` within one file system; across two, copy, fsync, compare SHA-256s, keep the
    modification time, and only then remove `path`. Raises OSError when the copy differs."""
    try:
        os.rename(path, target)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    partial = target.with_name(f".{target.name}.partial")
    with path.open("rb") as source, partial.open("wb") as copy:
        shutil.copyfileobj(source, copy, 1 << 20)
        copy.flush()
        os.fsync(copy.fileno())
    if sha256_of(partial) != sha256_of(path):
        partial.unlink()
        raise OSError(
            errno.EIO, f"the archived copy of {display_name(path.name)} differs from the original"
        )
    mtime = path.stat().st_mtime_ns
    os.utime(partial, ns=(mtime, mtime))
    os.replace(partial, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    path.unlink()


def _last_change(entry: os.stat_result, now: float) -> float:
    """When the file last changed: its modification time, or, when a sender's clock put that in
    the future, its inode change time (set by this machine's clock)."""
    return entry.st_mtime if entry.st_mtime <= now + 60 else entry.st_ctime


def look_at_inbox(data: DataDir, settle: float | None = None) -> InboxLook:
    """Move every settled regular inbox file to archive/<upload_id>/<name>, bytes and mtime
    unchanged; refuse (once) what is not a regular file; leave unsettled files for later.

    The rename is atomic, so when `segpipe run` and the sensor look at once, one of them takes
    each file and the other skips it."""
    data.ensure()
    settle = settle_seconds() if settle is None else settle
    look, now = InboxLook(), time.time()
    files = []
    for path in data.inbox.iterdir():
        if _IN_PROGRESS.search(path.name):
            continue
        try:
            entry = os.lstat(path)
        except FileNotFoundError:
            continue
        if what := _kind_of_entry(entry.st_mode):
            look.refused.append(_refuse(data, path, what))
        elif now - _last_change(entry, now) < settle:
            look.unsettled.append(path.name)
        else:
            files.append(path)
    for path in arrival_order(files):
        upload_id = upload_id_for(path)
        target = data.archive / upload_id / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            move_verified(path, target)
        except FileNotFoundError:
            continue
        look.received.append(ReceivedFile(upload_id, target))
    return look


def receive_inbox(data: DataDir, settle: float | None = None) -> list[ReceivedFile]:
    """The files `look_at_inbox` takes into the archive."""
    return look_at_inbox(data, settle).received


def archived(data: DataDir) -> list[ReceivedFile]:
    """Every upload ever received, in arrival order."""
    if not data.archive.exists():
        return []
    found = [
        ReceivedFile(folder.name, file)
        for folder in data.archive.iterdir()
        if folder.is_dir()
        for file in folder.iterdir()
        if file.is_file()
    ]
    return sorted(found, key=lambda f: arrival_key(f.path))


def archived_file(data: DataDir, upload_id: str) -> ReceivedFile:
    files = [f for f in (data.archive / upload_id).iterdir() if f.is_file()]
    if len(files) != 1:
        raise FileNotFoundError(f"archive/{upload_id} should hold exactly one file")
    return ReceivedFile(upload_id, files[0])
