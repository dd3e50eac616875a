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


JOURNAL = "journal"


class Swap:
    """Moves staged files over their targets, remembering how to put the old ones back.

    Each move is written to `<backup>/journal` before it is made (target, then its backup or
    nothing), so a swap killed half-way can be undone by the next process (`undo_journal`):
    a reader then sees all the old files of the destination again, never a mix."""

    def __init__(self, backup: Path):
        self.backup = backup
        self.done: list[tuple[Path, Path | None]] = []  # (target, backup of the old target)

    def put(self, staged: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self._keep(target)
        os.replace(staged, target)

    def remove(self, target: Path) -> None:
        self._keep(target)
        target.unlink()

    def _keep(self, target: Path) -> Path | None:
        """Back up `target` and journal the move about to happen; the backup's path or None."""
        kept = None
        if target.exists():
            kept = self.backup / str(len(self.done))
            kept.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                shutil.copytree(target, kept)
            else:
                link_or_copy(target, kept)
        self.backup.mkdir(parents=True, exist_ok=True)
        with (self.backup / JOURNAL).open("a", encoding="utf-8") as journal:
            journal.write(f"{target}\0{kept or ''}\n")
        self.done.append((target, kept))
        return kept

    def undo(self) -> None:
        _restore(self.done)
        self.done.clear()


def _restore(done: list[tuple[Path, Path | None]]) -> None:
    for target, kept in reversed(done):
        if target.is_dir():
            shutil.rmtree(target)
        if kept is None:
            target.unlink(missing_ok=True)
        elif kept.exists():
            os.replace(kept, target)


def undo_journal(backup: Path) -> bool:
    """Put back every file a killed swap journaled in `backup`; False when there is none."""
    journal = backup / JOURNAL
    if not journal.exists():
        return False
    done = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        target, _, kept = line.partition("\0")
        done.append((Path(target), Path(kept) if kept else None))
    _restore(done)
    return True
