"""`segpipe run --dry-run`: the exact effect of a run, and nothing written (Census's dry run).

The run itself is the real one: `run_pipeline`, the same Dagster jobs, against a throw-away copy
of the deployment (the warehouse file, segments.yaml, the inbox files with their modification
times, the archive linked read-only) and a throw-away Dagster instance. What it would do is then
read from the copy's bookkeeping, the same way for a real run (`run_effect`): no second
implementation of any rule can drift from the real one. The deployment's inbox, warehouse,
archive, exports and Dagster instance are never opened for writing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import duckdb
import polars as pl

from segpipe.config import WAREHOUSE_ENV, WAREHOUSE_FILE, DataDir
from segpipe.console import print_effect
from segpipe.defs.instance import segpipe_home
from segpipe.exit_codes import ExitCode
from segpipe.ingest.masking import display_name
from segpipe.vocabulary import InterestStatus, UploadStatus
from segpipe.warehouse.before_images import EXISTED, UPLOAD, shadow_of, shadows
from segpipe.warehouse.connection import connect
from segpipe.warehouse.sql import frame


class WarehouseBusy(RuntimeError):
    """The warehouse cannot be copied consistently right now."""


def _copy_warehouse(data: DataDir, copy: DataDir) -> None:
    """A consistent copy: a read-only connection holds DuckDB's lock (no other process writes
    meanwhile) while the file and its write-ahead log are copied."""
    if not data.warehouse.exists():
        return
    try:
        con = duckdb.connect(str(data.warehouse), read_only=True)
    except duckdb.IOException as error:  # another process holds the writer's lock
        raise WarehouseBusy(
            f"{data.warehouse} is being written by another process (a run, dagster dev); "
            f"try the dry run again when it is done ({error})"
        ) from None
    try:  # the file and its WAL, wherever it is ($SEGPIPE_WAREHOUSE may put it elsewhere)
        for path in data.warehouse.parent.glob(data.warehouse.name + "*"):
            suffix = path.name[len(data.warehouse.name) :]  # "" or ".wal"
            shutil.copy2(path, copy.root / f"{WAREHOUSE_FILE}{suffix}")
    finally:
        con.close()


def copy_deployment(data: DataDir, target: Path) -> DataDir:
    """What a run reads, copied into `target`: warehouse, segments.yaml, inbox files (times
    kept, so upload ids are the same); archived uploads linked, as a run only reads them."""
    copy = DataDir(target).ensure()
    _copy_warehouse(data, copy)
    if data.segments_yaml.exists():
        shutil.copy2(data.segments_yaml, copy.segments_yaml)
    for path in data.inbox.iterdir() if data.inbox.exists() else []:
        # Each entry as it is, so the dry run refuses what the run refuses: a link stays a
        # link (never the file it points at), a folder an (empty) folder.
        if path.is_symlink() or path.is_file():
            shutil.copy2(path, copy.inbox / path.name, follow_symlinks=False)
        elif path.is_dir():
            (copy.inbox / path.name).mkdir()
    for folder in data.archive.iterdir() if data.archive.exists() else []:
        (copy.archive / folder.name).symlink_to(folder, target_is_directory=True)
    segpipe_home(copy.dagster_home)
    return copy


def _per_name(rows: pl.DataFrame, name: str, columns: dict[str, str]) -> dict:
    """{name: {label: count}} from rows with a `name` column and one count column per label."""
    return {
        row[name]: {label: row[column] for label, column in columns.items()}
        for row in rows.iter_rows(named=True)
    }


def _refused(data: DataDir, upload: dict) -> dict[str, int]:
    """Rejected and ignored rows by `outcome: reason`, from the upload's errors file."""
    path = data.errors_csv(upload["upload_id"])
    if not path.exists():
        return {}
    rows = pl.read_csv(path, infer_schema=False, columns=["outcome", "reason"])
    labels = (rows["outcome"] + ": " + rows["reason"].fill_null("")).to_list()
    return dict(Counter(labels).most_common())


def _file_effect(con, data: DataDir, upload: dict) -> dict:
    upload_id = upload["upload_id"]
    people = (0, 0)
    if "constituents" in shadows(con):
        people = con.execute(
            f"SELECT count(*) FILTER (WHERE NOT {EXISTED}), count(*) FILTER (WHERE {EXISTED}) "
            f"FROM {shadow_of('constituents')} WHERE {UPLOAD} = ?",
            [upload_id],
        ).fetchall()[0]
    counts = ("rows_in", "rows_applied", "rows_rejected", "rows_ignored", "rows_superseded")
    return {
        "upload_id": upload_id,
        "file": display_name(upload["file_name"]),
        "kind": upload["kind"],
        "status": upload["status"],
        "error": upload["error"],
        **{name: upload[name] or 0 for name in counts},
        "people_created": people[0],
        "people_updated": people[1],
        "interests": _interest_changes(con, "h.upload_id = ?", [upload_id]),
        "segments": _segment_changes(con, "h.upload_id = ?", [upload_id]),
        "refused": _refused(data, upload),
    }


def _interest_changes(con, where: str, params: list) -> dict:
    rows = frame(
        con,
        f"""
        SELECT coalesce(i.name, 'interest ' || h.interest_id) AS interest,
               count(*) FILTER (WHERE change = '{InterestStatus.OPTED_IN}') AS opt_ins,
               count(*) FILTER (WHERE change = '{InterestStatus.OPTED_OUT}') AS opt_outs
        FROM membership_history h LEFT JOIN interests i USING (interest_id)
        WHERE h.interest_id IS NOT NULL AND {where} GROUP BY ALL ORDER BY interest
        """,
        params,
    )
    return _per_name(rows, "interest", {"opt_ins": "opt_ins", "opt_outs": "opt_outs"})


def _segment_changes(con, where: str, params: list) -> dict:
    rows = frame(
        con,
        f"""
        SELECT coalesce(s.name, 'segment ' || h.segment_id) AS segment,
               count(*) FILTER (WHERE change = 'entered') AS adds,
               count(*) FILTER (WHERE change = 'left') AS removes
        FROM membership_history h LEFT JOIN segments s USING (segment_id)
        WHERE h.segment_id IS NOT NULL AND {where} GROUP BY ALL ORDER BY segment
        """,
        params,
    )
    return _per_name(rows, "segment", {"adds": "adds", "removes": "removes"})


def _destination_changes(con, since: datetime) -> dict:
    rows = frame(
        con,
        'SELECT destination, segment, members, adds, removes FROM syncs WHERE "at" >= ? '
        "ORDER BY destination, segment",
        [since],
    )
    found: dict[str, dict] = {}
    for row in rows.iter_rows(named=True):
        found.setdefault(row["destination"], {})[row["segment"]] = {
            "members": row["members"],
            "adds": row["adds"],
            "removes": row["removes"],
        }
    return found


def _add_up(parts: list[dict]) -> dict:
    """{name: {label: n}} dicts summed name by name and label by label."""
    total: dict[str, Counter] = {}
    for part in parts:
        for name, counts in part.items():
            total.setdefault(name, Counter()).update(counts)
    return {name: dict(counts) for name, counts in sorted(total.items())}


def run_effect(data: DataDir, upload_ids: list[str], since: datetime) -> dict:
    """What a run that began at `since` (UTC, naive) and took `upload_ids` did to `data`:
    per file (status, row counts, people created and updated, opt-ins and opt-outs per
    interest, adds and removes per segment, refused rows by reason), the rule-based refresh's
    adds and removes per segment, each destination's sync per segment, and totals."""
    with connect(data.warehouse) as con:
        uploads = frame(
            con,
            "SELECT * FROM uploads WHERE upload_id IN (SELECT unnest(?::VARCHAR[]))",
            [upload_ids],
        )
        by_id = {row["upload_id"]: row for row in uploads.iter_rows(named=True)}
        files = [_file_effect(con, data, by_id[u]) for u in upload_ids if u in by_id]
        refresh = _segment_changes(con, 'h.upload_id IS NULL AND h."at" >= ?', [since])
        destinations = _destination_changes(con, since)
    # Rows are totalled over the files that would apply: a file refused whole (or held) is one
    # line of its own with its problem, not "rows rejected".
    applied = [f for f in files if f["status"] == UploadStatus.APPLIED]
    by_status = Counter(f["status"] for f in files)
    sums = Counter()
    for effect in applied:
        for name in ("people_created", "people_updated", "rows_rejected", "rows_ignored"):
            sums[name] += effect[name]
    total = {
        "files": len(files),
        # In UploadStatus's order (applied first), not the files': every total reads alike.
        "files_by_status": {
            status.value: by_status[status] for status in UploadStatus if by_status[status]
        },
        **dict(sums),
        "interests": _add_up([f["interests"] for f in files]),
        "segments": _add_up([f["segments"] for f in files] + [refresh]),
        "destinations": {
            name: {
                "adds": sum(s["adds"] for s in segments.values()),
                "removes": sum(s["removes"] for s in segments.values()),
            }
            for name, segments in destinations.items()
        },
        "refused": dict(_add_up([{"rows": f["refused"]} for f in applied]).get("rows", {})),
    }
    return {"files": files, "refresh": refresh, "destinations": destinations, "total": total}


def dry_run(
    data: DataDir,
    *,
    as_of: datetime | None,
    out: TextIO = sys.stdout,
    json_path: Path | None,
    allow_large_removals: bool = False,
) -> int:
    """Run against a copy of `data`, print (and with `json_path`, write) its effect; the exit
    code the real run would have (`allow_large_removals`: the run with that flag)."""
    from segpipe.runner import pending_uploads, run_pipeline

    if not data.warehouse_is_file:
        print(
            f"segpipe: dry run not possible: {WAREHOUSE_ENV} names {data.warehouse}, not a file "
            "a dry run can copy",
            file=out,
        )
        return ExitCode.FAILED
    # The copy's own warehouse, not the one $SEGPIPE_WAREHOUSE names: unset while the copy runs.
    saved = {name: os.environ.get(name) for name in ("DAGSTER_HOME", WAREHOUSE_ENV)}
    with tempfile.TemporaryDirectory(prefix="segpipe-dry-run-") as folder:
        try:
            copy = copy_deployment(data, Path(folder) / "data")
        except WarehouseBusy as busy:
            print(f"segpipe: dry run not possible: {busy}", file=out)
            return ExitCode.FAILED
        os.environ["DAGSTER_HOME"] = str(copy.dagster_home)
        os.environ.pop(WAREHOUSE_ENV, None)
        since = datetime.now(UTC).replace(tzinfo=None)
        log = io.StringIO()
        problems: list = []
        try:
            pending = pending_uploads(copy)
            code = run_pipeline(
                copy,
                as_of=as_of,
                out=log,
                allow_large_removals=allow_large_removals,
                problems=problems,
            )
            effect = run_effect(copy, pending, since)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    effect["exit_code"] = code
    effect["messages"] = [problem.line for problem in problems]
    print(f"segpipe: dry run of {len(pending)} new file(s) in {data.root}", file=out)
    print_effect(effect, out)
    for message in effect["messages"]:
        print(f"segpipe: {message}", file=out)
    if json_path:
        json_path.write_text(json.dumps(effect, indent=2, default=str) + "\n", encoding="utf-8")
    return code
