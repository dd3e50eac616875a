"""Take files out of the inbox into the archive, each with its upload_id: the first thing that
happens to any file, so nothing received is ever lost."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from segpipe.config import DataDir

# What SFTP clients and editors write while a file is still arriving.
_IN_PROGRESS = re.compile(r"^\.|(\.(part|tmp|filepart|crdownload)|~)$", re.I)


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
    """Sorts in arrival order (modification time, then name) and reads well in the Dagster UI."""
    stamp = datetime.fromtimestamp(path.stat().st_mtime_ns / 1e9, UTC)
    slug = re.sub(r"[^a-z0-9._-]+", "_", path.name.lower())[:60]
    return f"{stamp:%Y%m%d-%H%M%S-%f}-{slug}-{sha256_of(path)[:8]}"


def arrival_key(path: Path) -> tuple[int, str]:
    """Modification time, then name (SPEC section 3); the archive keeps both as received."""
    return path.stat().st_mtime_ns, path.name


def arrival_order(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=arrival_key)


def receive_inbox(data: DataDir) -> list[ReceivedFile]:
    """Move every complete inbox file to archive/<upload_id>/<name>, bytes and mtime unchanged.

    The rename is atomic, so when `segpipe run` and the sensor look at once, one of them takes
    each file and the other skips it.
    """
    data.ensure()
    files = [p for p in data.inbox.iterdir() if p.is_file() and not _IN_PROGRESS.search(p.name)]
    received = []
    for path in arrival_order(files):
        upload_id = upload_id_for(path)
        target = data.archive / upload_id / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, target)
        except FileNotFoundError:
            continue
        received.append(ReceivedFile(upload_id, target))
    return received


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
