"""Export files put in place all at once, or not at all.

A sync writes everything into a staging folder first. `Swap` then moves each staged file over
its target with `os.replace` (atomic on one file system, so a reader sees the old file or the
new one, never half of one), after hard-linking the old target aside; `undo` puts every old file
back. The caller swaps inside its DuckDB transaction and undoes when anything fails before the
commit, so the previous files and the diff baseline stay in step.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path


def header_line(columns: list[str] | tuple[str, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(columns)
    return out.getvalue()


def gather_parts(folder: Path, target: Path, *, header: str | None) -> None:
    """One file from the part files DuckDB wrote into `folder` (a partitioned COPY may split a
    partition over several parts when many are open at once); header-only when there are none."""
    parts = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    target.parent.mkdir(parents=True, exist_ok=True)
    if len(parts) == 1:
        os.replace(parts[0], target)
        return
    with target.open("wb") as out:
        if header is not None:
            out.write(header.encode())
        for part in parts:
            with part.open("rb") as source:
                if header is not None:
                    source.readline()
                shutil.copyfileobj(source, out)


def link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class Swap:
    """Moves staged files over their targets, remembering how to put the old ones back."""

    def __init__(self, backup: Path):
        self.backup = backup
        self.done: list[tuple[Path, Path | None]] = []  # (target, backup of the old target)

    def put(self, staged: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        kept = self._keep(target)
        os.replace(staged, target)
        self.done.append((target, kept))

    def remove(self, target: Path) -> None:
        kept = self._keep(target)
        target.unlink()
        self.done.append((target, kept))

    def _keep(self, target: Path) -> Path | None:
        if not target.exists():
            return None
        kept = self.backup / str(len(self.done))
        kept.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            shutil.copytree(target, kept)
        else:
            link_or_copy(target, kept)
        return kept

    def undo(self) -> None:
        for target, kept in reversed(self.done):
            if target.is_dir():
                shutil.rmtree(target)
            if kept is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(kept, target)
        self.done.clear()
