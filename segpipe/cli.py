"""`segpipe`: run the pipeline in-process, see what it did (SPEC section 8)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

from segpipe.config import DATA_DIR_ENV, DataDir, WarehouseLocationError, data_dir_from_env
from segpipe.exit_codes import ExitCode
from segpipe.warehouse.migrate import WarehouseVersionError

SAMPLE = Path(__file__).resolve().parent.parent / "data"
# How many uploads `segpipe status` lists unless `--limit N` says otherwise (0: every one).
RECENT_UPLOADS = 20


def _located(args: argparse.Namespace) -> DataDir:
    """--data-dir, else $SEGPIPE_DATA_DIR, else ./data: resolved here, once, and passed on; a
    $SEGPIPE_WAREHOUSE in a missing folder is refused before anything is created or moved."""
    root = Path(args.data_dir).resolve() if args.data_dir else data_dir_from_env()
    data = DataDir(root)
    data.check_warehouse_location()
    return data


def _data_dir(args: argparse.Namespace) -> DataDir:
    return _located(args).ensure()


def _existing_data_dir(args: argparse.Namespace) -> DataDir | None:
    """The data directory of a command that only looks: never created (a mistyped --data-dir
    says so instead of becoming a new, empty deployment); None, said on stderr, when it has no
    warehouse yet."""
    data = _located(args)
    if not data.warehouse_is_file or data.warehouse.exists():
        return data
    print(
        f"segpipe: no warehouse at {data.warehouse}: nothing has run in {data.root} yet "
        "(`segpipe run` creates it; check --data-dir)",
        file=sys.stderr,
    )
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from segpipe.runner import run_pipeline
    from segpipe.warehouse.guard import FORCE_FLAG, RETIRED_ALLOW_ENV

    if args.json and not args.dry_run:
        # --json is the dry run's effect; a real run ignoring it would leave a script waiting
        # for a file that never comes. A usage error, as argparse gives: exit 2, nothing run.
        args.usage_error("--json only goes with --dry-run (it writes the dry run's effect)")
    # A dry run leaves the deployment as it was, empty folders included: it works on a copy.
    data = _located(args) if args.dry_run else _data_dir(args)
    if RETIRED_ALLOW_ENV in os.environ:  # it once lifted the guard for good: say it no longer does
        print(
            f"segpipe: {RETIRED_ALLOW_ENV} is set and ignored: the removal guard is lifted for "
            f"one run at a time, with `segpipe run {FORCE_FLAG}`",
            file=sys.stderr,
        )
    forced = args.allow_large_removals
    if args.dry_run:
        from segpipe.dry_run import dry_run

        json_path = Path(args.json) if args.json else None
        return dry_run(
            data,
            as_of=args.as_of,
            out=sys.stdout,
            json_path=json_path,
            allow_large_removals=forced,
        )
    return run_pipeline(data, as_of=args.as_of, out=sys.stdout, allow_large_removals=forced)


def cmd_status(args: argparse.Namespace) -> int:
    from segpipe.runner import print_status

    if (data := _existing_data_dir(args)) is None:
        return ExitCode.FAILED
    print_status(data, out=sys.stdout, recent=args.limit or None)
    return ExitCode.OK


def cmd_segment_delete(args: argparse.Namespace) -> int:
    """Remove a manual or subscriber segment and its memberships (never the people)."""
    from segpipe.warehouse.connection import connect
    from segpipe.warehouse.segments import SegmentNotDeletable, delete_segment
    from segpipe.warehouse.sql import transaction

    data = _data_dir(args)
    try:
        with connect(data.warehouse) as con, transaction(con):
            name, kind, removed = delete_segment(
                con, args.name, datetime.now(UTC).replace(tzinfo=None)
            )
    except SegmentNotDeletable as refusal:
        print(f"segpipe: cannot delete segment: {refusal}", file=sys.stderr)
        return ExitCode.FAILED
    print(f"deleted {kind} segment {name!r}: {removed} membership(s) removed, no people deleted")
    return ExitCode.OK


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase one person everywhere (SPEC 8); a salted hash keeps them from being re-imported."""
    from segpipe.erasure.forget import ForgetError, forget
    from segpipe.warehouse.suppressions import IdentifierKind

    data = _data_dir(args)
    kind = next(k for k in IdentifierKind if getattr(args, k))
    home = Path(os.environ.get("DAGSTER_HOME") or data.dagster_home)
    try:
        report = forget(
            data,
            kind,
            getattr(args, kind),
            at=datetime.now(UTC).replace(tzinfo=None),
            dagster_home=home,
        )
    except ForgetError as error:
        print(f"segpipe: cannot forget: {kind}: {error}", file=sys.stderr)
        return ExitCode.FAILED
    for line in report.lines():
        print(line)
    return ExitCode.OK


def cmd_undo(args: argparse.Namespace) -> int:
    """Reverse one applied upload in one transaction (refused when later uploads depend on it)."""
    from segpipe.warehouse.connection import connect
    from segpipe.warehouse.undo import UndoRefused, undo_summary, undo_upload

    data = _data_dir(args)
    try:
        with connect(data.warehouse) as con:
            result = undo_upload(con, args.upload_id, at=datetime.now(UTC).replace(tzinfo=None))
    except UndoRefused as refusal:
        print(f"segpipe: cannot undo: {refusal}", file=sys.stderr)
        return ExitCode.FAILED
    print(undo_summary(result))
    print("run `segpipe run` to refresh rule-based segments and sync the destinations")
    return ExitCode.OK


def cmd_members(args: argparse.Namespace) -> int:
    """A segment's members now or at --as-of, as CSV (cons_id, member_id, masked email)."""
    from segpipe.warehouse.connection import connect
    from segpipe.warehouse.history import members_at
    from segpipe.warehouse.segments import UnknownSegment

    if (data := _existing_data_dir(args)) is None:
        return ExitCode.FAILED
    as_of = args.as_of or datetime.now(UTC).replace(tzinfo=None)
    try:
        with connect(data.warehouse, read_only=True) as con:
            members = members_at(con, args.segment, as_of)
    except UnknownSegment as error:
        print(f"segpipe: {error}", file=sys.stderr)
        return ExitCode.FAILED
    members.write_csv(sys.stdout)
    return ExitCode.OK


def cmd_history(args: argparse.Namespace) -> int:
    """A person's segment and interest entries and exits, with the upload or run of each."""
    from segpipe.ingest.masking import display_name
    from segpipe.warehouse.connection import connect
    from segpipe.warehouse.history import person_history

    if (data := _existing_data_dir(args)) is None:
        return ExitCode.FAILED
    with connect(data.warehouse, read_only=True) as con:
        entries = person_history(con, args.member_id)
        known = con.execute(
            "SELECT count(*) FROM constituents WHERE member_id = ?", [args.member_id]
        ).fetchone()[0]
    if entries.is_empty():
        # Two answers: nobody has the id (exit 1, a typo?), or someone has it and has not yet
        # entered or left any segment or interest (exit 0: an empty history is an answer).
        said = "has no segment or interest entries yet" if known else "is no constituent's"
        print(f"segpipe: member_id {args.member_id!r} {said}", file=sys.stderr)
        return ExitCode.OK if known else ExitCode.FAILED
    for row in entries.iter_rows(named=True):
        cause = row["run_id"] if str(row["run_id"] or "").startswith("undo:") else None
        cause = cause or (
            f"upload {row['upload_id']} ({display_name(row['file_name'])})"
            if row["upload_id"]
            else f"run {row['run_id']}"
        )
        print(
            f"{row['at']:%Y-%m-%d %H:%M:%S}  {row['change']:<9} {row['kind']:<15} "
            f"{row['segment']:<40} {cause}"
        )
    return ExitCode.OK


def _count(text: str) -> int:
    """A whole number, 0 or more; otherwise a usage error naming the value (exit 2)."""
    if not text.strip().isdecimal():
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, not {text!r}")
    return int(text)


def _instant(text: str) -> datetime:
    """An ISO 8601 date or date-time, as Python reads it (`datetime.fromisoformat`); otherwise a
    usage error naming the value and the form expected (exit 2)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date or date-time such as 2026-11-07 or 2026-11-07T09:30:00, "
            f"not {text!r}"
        ) from None


def _utc(text: str) -> datetime:
    """An ISO 8601 instant as naive UTC (an offset is converted; none means UTC)."""
    value = _instant(text)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def cmd_sample(args: argparse.Namespace) -> int:
    """Copy the sample deployment, its inbox files stamped so they arrive in name order."""
    target = Path(args.target).resolve()
    if target.exists() and any(target.iterdir()):
        print(f"{target} is not empty; choose an empty or new folder", file=sys.stderr)
        return ExitCode.FAILED
    shutil.copytree(SAMPLE, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
    stamp = datetime(2026, 11, 2, 9, 0).timestamp()
    for offset, path in enumerate(sorted((target / "inbox").iterdir())):
        os.utime(path, (stamp + offset, stamp + offset))
    print(f"sample deployment copied to {target}")
    return ExitCode.OK


def cmd_bench(args: argparse.Namespace) -> int:
    from segpipe.bench.run import main as bench

    return bench(args.scale, Path(args.dir), Path(args.json) if args.json else None)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="segpipe", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    def with_data_dir(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--data-dir", help=f"deployment folder (default ${DATA_DIR_ENV} or ./data)"
        )
        return sub

    run = with_data_dir(
        commands.add_parser("run", help="process new inbox files, refresh segments")
    )
    run.add_argument("--as-of", type=_instant, help="evaluation time for rule windows (ISO 8601)")
    run.add_argument(
        "--allow-large-removals",
        action="store_true",
        help="apply deliveries and syncs the removal guard (max_removal_share) would hold",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="show what the run would change, and change nothing",
    )
    run.add_argument(
        "--json", help="with --dry-run (only): also write the effect to this JSON file"
    )
    run.set_defaults(handler=cmd_run, usage_error=run.error)
    status = with_data_dir(commands.add_parser("status", help="recent uploads and segment sizes"))
    status.add_argument(
        "--limit",
        type=_count,
        default=RECENT_UPLOADS,
        metavar="N",
        help=f"list the N uploads settled last (default {RECENT_UPLOADS}; 0: all of them)",
    )
    status.set_defaults(handler=cmd_status)
    segment = commands.add_parser("segment", help="manage segments")
    segment_commands = segment.add_subparsers(dest="segment_command", required=True)
    delete = with_data_dir(
        segment_commands.add_parser(
            "delete", help="remove a manual or subscriber segment and its memberships"
        )
    )
    delete.add_argument("name", help="the segment's name (case does not matter)")
    delete.set_defaults(handler=cmd_segment_delete)
    forget = with_data_dir(
        commands.add_parser("forget", help="erase one person everywhere (warehouse, files, logs)")
    )
    who = forget.add_mutually_exclusive_group(required=True)
    who.add_argument("--email")
    who.add_argument("--phone")
    who.add_argument("--member-id", dest="member_id")
    who.add_argument("--cons-id", dest="cons_id")
    forget.set_defaults(handler=cmd_forget)
    undo = with_data_dir(
        commands.add_parser("undo", help="reverse one applied upload, in one transaction")
    )
    undo.add_argument("upload_id", help="the upload's id, as `segpipe status` shows it")
    undo.set_defaults(handler=cmd_undo)
    members = with_data_dir(
        commands.add_parser("members", help="a segment's members now or at a past instant (CSV)")
    )
    members.add_argument("segment", help="the segment's name (interest groups included)")
    members.add_argument("--as-of", type=_utc, help="the instant (ISO 8601; UTC if no offset)")
    members.set_defaults(handler=cmd_members)
    history = with_data_dir(
        commands.add_parser("history", help="a person's segment entries and exits, with causes")
    )
    history.add_argument("--member-id", required=True, help="the person's Member ID")
    history.set_defaults(handler=cmd_history)
    sample = commands.add_parser("sample", help="copy the sample deployment into a folder")
    sample.add_argument("target")
    sample.set_defaults(handler=cmd_sample)
    bench = commands.add_parser("bench", help="benchmark the pipeline against bare DuckDB")
    bench.add_argument("--scale", choices=["small", "full", "tiny"], default="small")
    bench.add_argument("--dir", default="build/bench", help="where data and runs go")
    bench.add_argument("--json", help="also write the results to this file")
    bench.set_defaults(handler=cmd_bench)
    return root


def _stoppable() -> None:
    """SIGINT and SIGTERM stop segpipe, even when it was started with them ignored (a background
    job of a non-interactive shell inherits SIGINT ignored, and Dagster's runs then map SIGTERM to
    the SIGINT handler, so `kill` would no longer stop the process)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    from segpipe.warehouse.connection import WarehouseBusy

    _stoppable()
    # Dagster marks APIs segpipe relies on (observable source assets, code references) as beta;
    # a user of the command line has nothing to do about that warning.
    warnings.filterwarnings("ignore", message=r".* is currently in beta")
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except (WarehouseVersionError, WarehouseLocationError) as error:  # say what to do
        print(f"segpipe: {error}", file=sys.stderr)
        return ExitCode.FAILED
    except WarehouseBusy as busy:  # another process kept the warehouse past the lock timeout
        print(f"segpipe: {busy}", file=sys.stderr)
        return ExitCode.FAILED
    except BrokenPipeError:
        # The reader went away (`segpipe status | head`): stop quietly, as a Unix tool does on
        # SIGPIPE, instead of a traceback; the interpreter's last flush goes nowhere (Python's
        # documented recipe, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
