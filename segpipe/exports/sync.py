"""Syncing segments to a destination: full lists, adds and removes since the last sync.

The diff baseline is `sync_members`: per destination and segment, the key values the destination
was last sent successfully (with the member they came from). Adds are current minus baseline,
removes baseline minus current (mirror mode only). It is keyed on the key VALUE rather than the
member: the destination knows people by that value, so a person whose email changed is a remove
of the old address and an add of the new one, and two people sharing a value are one row.

One sync of a destination: every table and file is computed in DuckDB for all of its segments at
once (one partitioned COPY writes every segment's three files), staged, then in one transaction
the baseline and `syncs` rows are written and the files swapped into place; anything failing
before the commit restores the previous files (see files.py), so baseline and files stay exact.
"""

from __future__ import annotations

import filecmp
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from segpipe import attentive
from segpipe.config import DataDir
from segpipe.exports.cells import neutralized_sql
from segpipe.exports.destinations import Destination, Pair
from segpipe.exports.files import Swap, gather_parts, header_line, link_or_copy, undo_journal
from segpipe.vocabulary import Channel, ExportFormat, SyncMode
from segpipe.warehouse.catalog import constituent_columns
from segpipe.warehouse.guard import (
    DEFAULT_LIMIT,
    RemovalHeld,
    RemovalLimit,
    held_message,
    too_many_removals,
)
from segpipe.warehouse.scratch import name_for, scratch, scratches
from segpipe.warehouse.segments import members_of
from segpipe.warehouse.sql import frame, quote, registered, transaction
from segpipe.warehouse.suppressions import (
    PERSON_KEY,
    channels_suppressing,
    suppressed_people,
)

FILES = ("members", "adds", "removes")
STAGING_PREFIX = ".staging-"


@dataclass(frozen=True)
class PairSync:
    pair: Pair
    members: int
    adds: int
    removes: int
    skipped_no_key: int
    path: str  # the audience folder, relative to the data dir
    skipped_no_consent: int = 0

    def metadata(self) -> dict:
        """Counts and paths only: never a key value."""
        return {
            "destination": self.pair.destination.name,
            "segment": self.pair.segment,
            "members": self.members,
            "adds": self.adds,
            "removes": self.removes,
            "skipped_no_key": self.skipped_no_key,
            "skipped_no_consent": self.skipped_no_consent,
            "path": self.path,
        }


@dataclass
class DestinationSync:
    destination: Destination
    stamp: str
    pairs: list[PairSync] = field(default_factory=list)
    delivery_files: list[str] = field(default_factory=list)  # attentive files, data-dir relative
    skipped_segments: list[str] = field(default_factory=list)  # names attentive cannot carry
    # Every pair was as its latest sync left it: nothing was written (see `unchanged`).
    unchanged: bool = False


@dataclass(frozen=True)
class _Tables:
    """The scratch tables one sync (or check) of a destination computes in, by handle: each
    field a name from scratch.py, made by _stage_tables and read by the steps after it."""

    pairs: str  # pair number, segment id and name, attentive_ok, retired
    sources: str  # (pair, segment_id): whose baseline each pair diffs against
    suppressed: str  # the people suppressed on the destination's channel
    people: str  # each pair's members, their key value and consent
    current: str  # (pair, key_value, cons_id) the destination should hold now
    baseline: str  # (pair, key_value, cons_id) it was last sent
    out: str  # (pair, file, key_value, cons_id): the members, adds and removes files' rows


@contextmanager
def _scratch_tables(con: duckdb.DuckDBPyConnection) -> Iterator[_Tables]:
    """A sync's scratch tables for the block, all dropped in one statement when it ends."""
    purposes = [f"sync_{table.name}" for table in fields(_Tables)]
    with scratches(con, *purposes) as names:
        yield _Tables(*names)


def sync_stamp(at: datetime) -> str:
    return at.strftime("%Y%m%dT%H%M%S%fZ")


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _output_columns(con: duckdb.DuckDBPyConnection, destination: Destination) -> str:
    """The key, then the chosen fields, text neutralized, in the destination's column order."""
    types = constituent_columns(con)
    columns = [f"{neutralized_sql('o.key_value')} AS {quote(destination.key)}"]
    for name in destination.columns[1:]:
        value = f"c.{quote(name)}"
        if types.get(name) == "VARCHAR":
            value = neutralized_sql(value)
        columns.append(f"{value} AS {quote(name)}")
    return ", ".join(columns)


# The opt-in column each channel's consent starts from.
OPT_IN = {Channel.EMAIL: "email_opt_in", Channel.SMS: "sms_opt_in"}


def _consent(con, destination: Destination, suppressed: str) -> str:
    """SQL over constituents `c`: may the destination contact this person on its channel?
    Opted in and not suppressed on that channel (or on all); always for channel none. The
    suppressed people are put in the scratch table `suppressed` first."""
    if destination.channel == Channel.NONE:
        return "TRUE"
    channels = channels_suppressing(destination.channel)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {suppressed} AS "
        f"SELECT DISTINCT person FROM ({suppressed_people(channels)})"
    )
    return (
        f"coalesce(c.{OPT_IN[destination.channel]}, FALSE) "
        f"AND c.{PERSON_KEY} NOT IN (SELECT person FROM {suppressed})"
    )


def _stage_tables(con, destination: Destination, pairs: list[Pair], tables: _Tables) -> None:
    """The scratch `tables` for these pairs, up to `out`.
    A person without consent for the destination's channel is not current, so a baseline
    holding them makes a remove (SPEC 6)."""
    pair_rows = pl.DataFrame(
        {
            "pair": list(range(len(pairs))),
            "segment_id": [p.segment_id for p in pairs],
            "segment": [p.segment for p in pairs],
            "attentive_ok": [bool(attentive.SEGMENT_NAME.match(p.segment)) for p in pairs],
            "retired": [p.retired for p in pairs],
        },
        schema={
            "pair": pl.Int64,
            "segment_id": pl.Int64,
            "segment": pl.String,
            "attentive_ok": pl.Boolean,
            "retired": pl.Boolean,
        },
    )
    # Whose baseline each pair diffs against: its segment's, and those of retired segments
    # folded into its folder (Pair.former_ids).
    sources = pl.DataFrame(
        [(n, sid) for n, p in enumerate(pairs) for sid in (p.segment_id, *p.former_ids)],
        schema={"pair": pl.Int64, "segment_id": pl.Int64},
        orient="row",
    )
    for table, rows in ((tables.pairs, pair_rows), (tables.sources, sources)):
        with registered(con, name_for("sync_frame"), rows) as registered_rows:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {registered_rows}")
    key = quote(destination.key)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {tables.people} AS
        SELECT m.pair, c.cons_id, nullif(trim(CAST(c.{key} AS VARCHAR)), '') AS key_value,
               {_consent(con, destination, tables.suppressed)} AS consented
        FROM (SELECT DISTINCT p.pair, s.cons_id
              FROM {tables.pairs} p JOIN ({members_of(tables.pairs)}) s
                ON s.segment_id = p.segment_id
              WHERE NOT p.retired) m
        JOIN constituents c ON c.cons_id = m.cons_id
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {tables.current} AS
        SELECT pair, key_value, min(cons_id) AS cons_id
        FROM {tables.people} WHERE key_value IS NOT NULL AND consented GROUP BY pair, key_value
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {tables.baseline} AS
        SELECT p.pair, b.key_value, min(b.cons_id) AS cons_id
        FROM sync_members b JOIN {tables.sources} p ON p.segment_id = b.segment_id
        WHERE b.destination = ? GROUP BY p.pair, b.key_value
        """,
        [destination.name],
    )
    # Upsert destinations are never told to remove anyone.
    removes = "TRUE" if destination.mode == SyncMode.MIRROR else "FALSE"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {tables.out} AS
        SELECT pair, 'members' AS file, key_value, cons_id FROM {tables.current}
        UNION ALL
        SELECT pair, 'adds', key_value, cons_id FROM {tables.current} c
        WHERE NOT EXISTS (SELECT 1 FROM {tables.baseline} b
                          WHERE b.pair = c.pair AND b.key_value = c.key_value)
        UNION ALL
        SELECT pair, 'removes', key_value, cons_id FROM {tables.baseline} b
        WHERE {removes} AND NOT EXISTS (SELECT 1 FROM {tables.current} c
                                         WHERE c.pair = b.pair AND c.key_value = b.key_value)
        """
    )


def _counts(con, tables: _Tables) -> pl.DataFrame:
    out, people = tables.out, tables.people
    return frame(
        con,
        f"""
        SELECT p.pair,
               (SELECT count(*) FROM {out} o WHERE o.pair = p.pair AND o.file = 'members')
                   AS members,
               (SELECT count(*) FROM {out} o WHERE o.pair = p.pair AND o.file = 'adds')
                   AS adds,
               (SELECT count(*) FROM {out} o WHERE o.pair = p.pair AND o.file = 'removes')
                   AS removes,
               (SELECT count(*) FROM {people} s WHERE s.pair = p.pair AND s.key_value IS NULL)
                   AS skipped_no_key,
               (SELECT count(*) FROM {people} s
                WHERE s.pair = p.pair AND s.key_value IS NOT NULL AND NOT s.consented)
                   AS skipped_no_consent
        FROM {tables.pairs} p ORDER BY p.pair
        """,
    )


def _removal_counts(tables: _Tables) -> str:
    """Per pair: the members the destination holds now (the baseline) and the removes of this
    sync."""
    return f"""
        SELECT p.segment,
               (SELECT count(*) FROM {tables.baseline} b WHERE b.pair = p.pair) AS members,
               (SELECT count(*) FROM {tables.out} o WHERE o.pair = p.pair AND o.file = 'removes')
                   AS removes
        FROM {tables.pairs} p
    """


def _guard_removals(
    con, destination: Destination, limit: RemovalLimit | None, tables: _Tables
) -> None:
    """Raise RemovalHeld when a mirror sync would remove more than the limit of a segment the
    destination holds: a destination mirrors removes, so a wiped segment would wipe its list."""
    if destination.mode != SyncMode.MIRROR:
        return
    held = too_many_removals(con, _removal_counts(tables), limit)
    if held:
        raise RemovalHeld(held_message(f"sync to destination {destination.name!r}", held, limit))


def _write_lists(
    con,
    destination: Destination,
    stage: Path,
    tables: _Tables,
    count: int,
    files: tuple[str, ...] = FILES,
) -> None:
    """Every pair's `files` (members, adds and removes) in one partitioned COPY, then one file
    each."""
    parts = stage / "parts"
    # The lines table goes as soon as it is written (it holds every output row).
    with scratch(con, "sync_lines") as lines:
        _copy_lines(con, destination, parts, tables.out, lines, files)
    header = header_line(destination.columns)
    for pair in range(count):
        for name in files:
            gather_parts(
                parts / f"pair={pair}" / f"file={name}",
                stage / "pairs" / str(pair) / f"{name}.csv",
                header=header,
            )


def _copy_lines(con, destination: Destination, parts: Path, out: str, lines: str, files) -> None:
    """The rows of `out` in `files`, in the destination's columns, into the scratch table
    `lines`, then to `parts` by one partitioned COPY."""
    wanted = ", ".join(f"'{name}'" for name in files)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {lines} AS
        SELECT o.pair, o.file, {_output_columns(con, destination)}
        FROM {out} o LEFT JOIN constituents c ON c.cons_id = o.cons_id
        WHERE o.file IN ({wanted})
        ORDER BY o.pair, o.file, o.key_value
        """
    )
    # A partitioned COPY written by several threads interleaves their rows: with one thread it
    # keeps the table's order, so every file is sorted by key (stable from sync to sync).
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    con.execute("SET threads = 1")
    try:
        con.execute(
            f"COPY {lines} TO {_literal(parts)} "
            "(FORMAT csv, HEADER true, PARTITION_BY (pair, file))"
        )
    finally:
        con.execute(f"SET threads = {int(threads)}")


def _write_attentive(
    con, destination: Destination, stage: Path, tables: _Tables, max_rows: int
) -> int:
    """Headerless `key,segment name` rows of every segment, split at `max_rows` a file;
    returns how many files. US phones go as their 10 national digits, as Attentive takes them."""
    key = "o.key_value"
    if destination.key == "phone":
        key = attentive.phone_sql(key)
    attentive_rows = f"{tables.current} o JOIN {tables.pairs} p USING (pair) WHERE p.attentive_ok"
    rows = con.execute(f"SELECT count(*) FROM {attentive_rows}").fetchall()[0][0]
    if rows == 0:
        return 0
    files = math.ceil(rows / max_rows)
    if files == 1:
        # One file: a plain ordered COPY writes the rows in order, so an unchanged list is the
        # same bytes (a partitioned COPY may spread them over parts in any order), and SFTP
        # delivery does not send it again (issue 21).
        (stage / "delivery").mkdir(parents=True, exist_ok=True)
        con.execute(
            f"""
            COPY (
                SELECT {neutralized_sql(key)} AS key, {neutralized_sql("p.segment")} AS segment
                FROM {attentive_rows}
                ORDER BY p.segment, o.key_value
            ) TO {_literal(stage / "delivery" / "1")} (FORMAT csv, HEADER false)
            """
        )
        return files
    con.execute(
        f"""
        COPY (
            SELECT (row_number() OVER (ORDER BY p.segment, o.key_value) - 1) // {int(max_rows)} + 1
                       AS file_n,
                   {neutralized_sql(key)} AS key, {neutralized_sql("p.segment")} AS segment
            FROM {attentive_rows}
        ) TO {_literal(stage / "attentive")} (FORMAT csv, HEADER false, PARTITION_BY (file_n))
        """
    )
    for n in range(1, files + 1):
        gather_parts(stage / "attentive" / f"file_n={n}", stage / "delivery" / str(n), header=None)
    return files


def _record(
    con, destination: Destination, pairs: list[PairSync], tables: _Tables, at, run_id
) -> None:
    """The syncs rows, and the new baseline: what the destination now has."""
    rows = pl.DataFrame(
        [
            {
                "destination": destination.name,
                "segment": s.pair.segment,
                "segment_id": s.pair.segment_id,
                "at": at,
                "members": s.members,
                "adds": s.adds,
                "removes": s.removes,
                "skipped_no_key": s.skipped_no_key,
                "skipped_no_consent": s.skipped_no_consent,
                "path": s.path,
                "mode": destination.mode,
                "run_id": run_id,
                "retired": s.pair.retired,
            }
            for s in pairs
        ]
    )
    with registered(con, name_for("sync_rows"), rows) as sync_rows:
        con.execute(
            'INSERT INTO syncs (destination, segment, segment_id, "at", members, adds, removes, '
            "skipped_no_key, path, mode, run_id, skipped_no_consent, retired) "
            'SELECT destination, segment, segment_id, "at", members, adds, removes, '
            f"skipped_no_key, path, mode, run_id, skipped_no_consent, retired FROM {sync_rows}"
        )
    if destination.mode == SyncMode.MIRROR:
        con.execute(
            "DELETE FROM sync_members WHERE destination = ? "
            f"AND segment_id IN (SELECT segment_id FROM {tables.sources})",
            [destination.name],
        )
        entering = f"SELECT * FROM {tables.out} WHERE file = 'members'"
    else:
        entering = f"SELECT * FROM {tables.out} WHERE file = 'adds'"
    con.execute(
        f"""
        INSERT INTO sync_members (destination, segment_id, key_value, cons_id, since)
        SELECT ?, p.segment_id, o.key_value, o.cons_id, ?
        FROM ({entering}) o JOIN {tables.pairs} p USING (pair)
        """,
        [destination.name, at],
    )


def _swap_in(swap: Swap, data: DataDir, result: DestinationSync, stage: Path, at) -> None:
    folder = data.exports / result.destination.name
    for position, synced in enumerate(result.pairs):
        staged = stage / "pairs" / str(position)
        target = folder / synced.pair.audience
        swap.put(staged / "history", target / "history" / result.stamp)
        for name in FILES:
            swap.put(staged / f"{name}.csv", target / f"{name}.csv")
    if result.destination.format == ExportFormat.ATTENTIVE:
        # The last sync of a day is that day's delivery: earlier files of the day go, so a
        # delivery never mixes two syncs' lists.
        today = f"{result.destination.domain}_subscriber_segment_{at:%Y%m%d}_"
        for old in sorted(folder.glob(today + "*.csv")):
            swap.remove(old)
        for n, name in enumerate(result.delivery_files, start=1):
            swap.put(stage / "delivery" / str(n), data.root / name)


def _cleanup_stale_staging(con, folder: Path) -> list[str]:
    """A sync killed before its cleanup leaves its staging folder. When it was killed during
    its swap, before its transaction committed, the files it had swapped in are put back (the
    warehouse's baseline is still the old one); once committed, its new files stay. Then the
    folder goes. The stamps of the swaps undone."""
    undone = []
    for stale in sorted(folder.glob(STAGING_PREFIX + "*")):
        stamp = stale.name.removeprefix(STAGING_PREFIX)
        if not _committed(con, folder.name, stamp) and undo_journal(stale / "backup"):
            undone.append(stamp)
        shutil.rmtree(stale, ignore_errors=True)
    return undone


def _committed(con, destination: str, stamp: str) -> bool:
    try:
        at = datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ")
    except ValueError:
        return False
    found = con.execute(
        'SELECT count(*) FROM syncs WHERE destination = ? AND "at" = ?', [destination, at]
    ).fetchall()
    return found[0][0] > 0


def finish_interrupted_syncs(con: duckdb.DuckDBPyConnection, data: DataDir) -> list[str]:
    """At a start: every destination's sync killed during its swap is undone (all its old files
    back) or, if it had committed, kept; "<destination> <stamp>" per swap undone. Call it with
    the warehouse open for writing, so that no other process is syncing."""
    if not data.exports.exists():
        return []
    return [
        f"{folder.name} {stamp}"
        for folder in sorted(p for p in data.exports.iterdir() if p.is_dir())
        for stamp in _cleanup_stale_staging(con, folder)
    ]


def _latest(con, destination: Destination) -> dict[int, dict]:
    """Per segment_id, the latest syncs row of `destination`."""
    rows = frame(
        con,
        """
        SELECT segment_id, "at", members, skipped_no_key,
               coalesce(skipped_no_consent, 0) AS skipped_no_consent, path, mode,
               coalesce(retired, FALSE) AS retired
        FROM syncs WHERE destination = ?
        QUALIFY row_number() OVER (PARTITION BY segment_id ORDER BY "at" DESC) = 1
        """,
        [destination.name],
    )
    return {row["segment_id"]: row for row in rows.iter_rows(named=True)}


def _unchanged(
    con, data: DataDir, destination: Destination, pairs: list[Pair], stage: Path, at, counts
) -> bool:
    """Would this sync send the destination exactly what its latest sync did? True when, for
    every pair: nothing to add or remove (so the baseline stays as it is), the same counts,
    mode and folder as its latest syncs row, and a full list byte for byte the one in place
    (same members, key values, fields and consent). An attentive destination also needs its
    latest sync to be of the same day, whose delivery file is then already the right one."""
    latest = _latest(con, destination)
    folder = data.exports / destination.name
    for position, pair in enumerate(pairs):
        row, before = counts.row(position, named=True), latest.get(pair.segment_id)
        if before is None or before["retired"] or row["adds"] or row["removes"]:
            return False
        path = str((folder / pair.audience).relative_to(data.root))
        if (before["path"], before["mode"]) != (path, destination.mode):
            return False
        if any(row[k] != before[k] for k in ("members", "skipped_no_key", "skipped_no_consent")):
            return False
        if destination.format == ExportFormat.ATTENTIVE and before["at"].date() != at.date():
            return False
        current = folder / pair.audience / "members.csv"
        staged = stage / "pairs" / str(position) / "members.csv"
        if not current.is_file() or not filecmp.cmp(staged, current, shallow=False):
            return False
    return True


def sync_is_unchanged(
    con: duckdb.DuckDBPyConnection,
    data: DataDir,
    destination: Destination,
    pairs: list[Pair],
    *,
    at: datetime,
) -> bool:
    """Would syncing `pairs` now leave them as their latest sync did (see _unchanged)? Computes
    the lists as the sync does, in a scratch folder, and changes nothing: what lets
    `segpipe run` start no sync run when no destination would get anything new."""
    if not pairs:
        return True
    folder = data.exports / destination.name
    if not folder.is_dir():
        return False
    # Named like a sync's staging folder: a process killed here leaves nothing that the next
    # start does not clear (no swap journal in it, so nothing is put back).
    stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX + "check-", dir=folder))
    try:
        with _scratch_tables(con) as tables:
            _stage_tables(con, destination, pairs, tables)
            # Only the full lists: no adds or removes is read from the counts.
            _write_lists(con, destination, stage, tables, len(pairs), files=("members",))
            counts = _counts(con, tables)
            return _unchanged(con, data, destination, pairs, stage, at, counts)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def sync_destination(
    con: duckdb.DuckDBPyConnection,
    data: DataDir,
    destination: Destination,
    pairs: list[Pair],
    *,
    at: datetime,
    run_id: str | None = None,
    attentive_max_rows: int = attentive.MAX_ROWS,
    checkpoint: Callable[[str], None] | None = None,
    removal_limit: RemovalLimit | None = DEFAULT_LIMIT,
    skip_unchanged: bool = False,
) -> DestinationSync:
    """Sync `pairs` (segments of `destination`): files, syncs rows and baseline, all or none.
    Raises RemovalHeld, changing nothing, when a mirror sync would remove more than
    `removal_limit` of a segment (None: no limit).

    With `skip_unchanged`, a destination whose every pair would be sent exactly what its latest
    sync sent (see _unchanged) is left alone: no files, no syncs rows, same baseline; the result
    says `unchanged`. Its latest syncs rows keep describing the files in place (a new row would
    claim adds and removes that its adds.csv and removes.csv, left as they were, do not hold).

    `checkpoint(stage)` is called after staging ("staged") and after the files are swapped in,
    before the commit ("swapped"); whatever it raises fails the sync like any other error."""
    result = DestinationSync(destination, sync_stamp(at))
    if not pairs:
        return result
    folder = data.exports / destination.name
    folder.mkdir(parents=True, exist_ok=True)
    _cleanup_stale_staging(con, folder)
    stage = folder / (STAGING_PREFIX + result.stamp)
    swap = Swap(stage / "backup")
    try:
        stage.mkdir()
        with _scratch_tables(con) as tables:
            _stage_tables(con, destination, pairs, tables)
            _guard_removals(con, destination, removal_limit, tables)
            counts = _counts(con, tables)
            _write_lists(con, destination, stage, tables, len(pairs))
            if skip_unchanged and _unchanged(con, data, destination, pairs, stage, at, counts):
                result.unchanged = True
                return result
            result.pairs = _pair_syncs(data, folder, pairs, stage, counts)
            if destination.format == ExportFormat.ATTENTIVE:
                _stage_delivery(con, data, result, pairs, stage, tables, at, attentive_max_rows)
            if checkpoint:
                checkpoint("staged")
            try:
                with transaction(con):
                    _record(con, destination, result.pairs, tables, at, run_id)
                    _swap_in(swap, data, result, stage, at)
                    if checkpoint:
                        checkpoint("swapped")
            except BaseException:
                swap.undo()
                raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return result


def _pair_syncs(
    data: DataDir, folder: Path, pairs: list[Pair], stage: Path, counts: pl.DataFrame
) -> list[PairSync]:
    """Each pair's counts and folder; its three staged files also linked into its history."""
    synced = []
    for position, pair in enumerate(pairs):
        row = counts.row(position, named=True)
        for name in FILES:
            link_or_copy(
                stage / "pairs" / str(position) / f"{name}.csv",
                stage / "pairs" / str(position) / "history" / f"{name}.csv",
            )
        path = (folder / pair.audience).relative_to(data.root)
        synced.append(
            PairSync(
                pair,
                row["members"],
                row["adds"],
                row["removes"],
                row["skipped_no_key"],
                str(path),
                row["skipped_no_consent"],
            )
        )
    return synced


def _stage_delivery(
    con,
    data: DataDir,
    result: DestinationSync,
    pairs: list[Pair],
    stage: Path,
    tables: _Tables,
    at: datetime,
    max_rows: int,
) -> None:
    """An attentive destination's delivery files, staged; the segments it cannot carry."""
    destination, folder = result.destination, data.exports / result.destination.name
    files = _write_attentive(con, destination, stage, tables, max_rows)
    names = [attentive.file_name(destination.domain, at, n) for n in range(1, files + 1)]
    result.delivery_files = [str((folder / name).relative_to(data.root)) for name in names]
    result.skipped_segments = [
        p.segment for p in pairs if not p.retired and not attentive.SEGMENT_NAME.match(p.segment)
    ]
