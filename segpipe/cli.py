"""`segpipe`: run the pipeline in-process, see what it did (SPEC section 8)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from segpipe.config import DATA_DIR_ENV, DataDir, data_dir_from_env
from segpipe.warehouse.migrate import WarehouseVersionError

EXIT_OK, EXIT_FAILED, EXIT_REJECTED = 0, 1, 2
SAMPLE = Path(__file__).resolve().parent.parent / "data"


def _data_dir(args: argparse.Namespace) -> DataDir:
    if args.data_dir:
        os.environ[DATA_DIR_ENV] = str(Path(args.data_dir).resolve())
    return DataDir(data_dir_from_env()).ensure()


def cmd_run(args: argparse.Namespace) -> int:
    from segpipe.runner import run_pipeline

    data = _data_dir(args)
    return run_pipeline(data, as_of=args.as_of, out=sys.stdout)


def cmd_status(args: argparse.Namespace) -> int:
    from segpipe.runner import print_status

    print_status(_data_dir(args), out=sys.stdout)
    return EXIT_OK


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
        return EXIT_FAILED
    print(f"deleted {kind} segment {name!r}: {removed} membership(s) removed, no people deleted")
    return EXIT_OK


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
        return EXIT_FAILED
    for line in report.lines():
        print(line)
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    """Copy the sample deployment, its inbox files stamped so they arrive in name order."""
    target = Path(args.target).resolve()
    if target.exists() and any(target.iterdir()):
        print(f"{target} is not empty; choose an empty or new folder", file=sys.stderr)
        return EXIT_FAILED
    shutil.copytree(SAMPLE, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
    stamp = datetime(2026, 11, 2, 9, 0).timestamp()
    for offset, path in enumerate(sorted((target / "inbox").iterdir())):
        os.utime(path, (stamp + offset, stamp + offset))
    print(f"sample deployment copied to {target}")
    return EXIT_OK


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
    run.add_argument(
        "--as-of", type=datetime.fromisoformat, help="evaluation time for rule windows (ISO 8601)"
    )
    run.set_defaults(handler=cmd_run)
    status = with_data_dir(commands.add_parser("status", help="recent uploads and segment sizes"))
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
    sample = commands.add_parser("sample", help="copy the sample deployment into a folder")
    sample.add_argument("target")
    sample.set_defaults(handler=cmd_sample)
    bench = commands.add_parser("bench", help="benchmark the pipeline against bare DuckDB")
    bench.add_argument("--scale", choices=["small", "full", "tiny"], default="small")
    bench.add_argument("--dir", default="build/bench", help="where data and runs go")
    bench.add_argument("--json", help="also write the results to this file")
    bench.set_defaults(handler=cmd_bench)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except WarehouseVersionError as error:  # an old or newer warehouse: say what to do
        print(f"segpipe: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
