"""`segpipe run` and `segpipe status`: the Dagster assets, driven in-process, with a report."""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import dagster as dg
import polars as pl

from segpipe.config import DataDir
from segpipe.console import print_refused, print_summary
from segpipe.defs.common import AS_OF_TAG, QUIET, WARNED_BY_TAG
from segpipe.defs.deliveries.partitions import delivering, register_destinations
from segpipe.defs.exports.assets import DESTINATIONS_FAILED, DESTINATIONS_HELD, SEGMENTS_MISSING
from segpipe.defs.exports.partitions import current_pairs, register_pairs
from segpipe.defs.instance import ensure_warehouse_pool, prepare_home
from segpipe.defs.recovery import fail_dead_runs, process_tags, wait_for_pool
from segpipe.defs.segments.checks import failed_blocking_checks
from segpipe.defs.uploads.jobs import range_tags
from segpipe.defs.uploads.partitions import uploads_partitions
from segpipe.exit_codes import ExitCode
from segpipe.exports.deliver import undelivered_diffs
from segpipe.exports.destinations import DestinationError, MissingSegments
from segpipe.exports.sync import finish_interrupted_syncs, sync_is_unchanged
from segpipe.ingest.filenames import printable
from segpipe.ingest.masking import display_name
from segpipe.ingest.receive import archived, look_at_inbox, settle_seconds
from segpipe.pipeline import progress
from segpipe.vocabulary import ProblemKind, UploadStatus
from segpipe.warehouse.connection import connect
from segpipe.warehouse.guard import ALLOW_TAG, FORCE_FLAG
from segpipe.warehouse.sql import frame
from segpipe.warehouse.uploads import recent_uploads, upload_count

# A `segpipe run` waits at most this many settle intervals for files still being written.
MAX_SETTLE_WAITS = 15
# The runs of the `segpipe run` under way, whose warnings it sends itself (no daemon runs the
# warning sensors for it); None outside one (the bench drives jobs too).
_THIS_RUN: ContextVar[list | None] = ContextVar("segpipe_run_runs", default=None)
# Tags every run of the `segpipe run` under way carries (ALLOW_TAG when it was forced).
_RUN_TAGS: ContextVar[dict | None] = ContextVar("segpipe_run_tags", default=None)


@dataclass(frozen=True)
class RunProblem:
    """One problem of a `segpipe run`, as the terminal says it; its kind decides the exit code."""

    text: str
    kind: ProblemKind = ProblemKind.FAILED

    def __str__(self) -> str:
        return self.text

    @property
    def line(self) -> str:
        """What `segpipe run` (and its dry run) prints for it, after "segpipe: "."""
        if self.kind is ProblemKind.HELD:
            return f"Held: {self.text}"
        if self.kind is ProblemKind.NOT_SYNCED:
            return f"warning: {self.text}"
        return f"run failed: {self.text}"

    @property
    def waits(self) -> bool:
        """The run completed and this part of it waits for a person (exit 2, not 1)."""
        return self.kind in (ProblemKind.HELD, ProblemKind.NOT_SYNCED)


def build_definitions(data: DataDir) -> dg.Definitions:
    """segpipe's definitions bound to `data` (imported here: loading them imports every domain)."""
    from segpipe.definitions import build_definitions as build

    return build(data)


def uploads_table(data: DataDir, *, read_only: bool = False) -> pl.DataFrame:
    """Every uploads row, in the order the files were settled (`applied_at`): the upload id
    holds the shown (masked) name, which need not sort as the names the files arrived under."""
    with connect(data.warehouse, read_only=read_only) as con:
        return recent_uploads(con, None)


def pending_uploads(
    data: DataDir, out: TextIO | None = None, refused: list[str] | None = None
) -> list[str]:
    """Files from the inbox, and archived ones never settled (a crash, a lost run) or held by
    the removal guard, in order.
    Files still being written are waited for (up to MAX_SETTLE_WAITS settle intervals, then
    left for the next run); entries that are not regular files are refused, said so, and their
    names added to `refused` when given."""
    out = out or sys.stdout
    for _ in range(MAX_SETTLE_WAITS):
        look = look_at_inbox(data)
        for name, problem in look.refused:
            print(f"segpipe: refused inbox/{printable(display_name(name))}: {problem}", file=out)
            if refused is not None:
                refused.append(name)
        if not look.unsettled:
            break
        names = ", ".join(printable(display_name(n)) for n in look.unsettled)
        print(f"segpipe: waiting for file(s) still being written: {names}", file=out)
        time.sleep(settle_seconds())
    else:
        print("segpipe: still changing, left for the next run: " + names, file=out)
    with connect(data.warehouse) as con:
        # A sync killed during its swap is finished first: exports all old or all new.
        for swap in finish_interrupted_syncs(con, data):
            print(f"segpipe: export swap {swap} was interrupted: old files put back", file=out)
        settled = set(
            frame(con, f"SELECT upload_id FROM uploads WHERE status <> '{UploadStatus.HELD}'")[
                "upload_id"
            ].to_list()
        )
    return [f.upload_id for f in archived(data) if f.upload_id not in settled]


def register_uploads(instance: dg.DagsterInstance, pending: list[str]) -> dict[str, str]:
    """Add the pending uploads' partitions; the tags of one run over the range from the first
    to the last of them, in partition order (settled uploads inside it are skipped by the step)."""
    known = instance.get_dynamic_partitions(uploads_partitions.name)
    instance.add_dynamic_partitions(
        uploads_partitions.name, [k for k in pending if k not in set(known)]
    )
    ordered = instance.get_dynamic_partitions(uploads_partitions.name)
    positions = sorted(ordered.index(k) for k in pending)
    return range_tags(ordered[positions[0]], ordered[positions[-1]])


def _show_progress(out: TextIO) -> logging.Handler:
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    return handler


def run_pipeline(
    data: DataDir,
    *,
    as_of: datetime | None,
    out: TextIO = sys.stdout,
    allow_large_removals: bool = False,
    problems: list[RunProblem] | None = None,
) -> int:
    """`segpipe run`: the exit code (ExitCode). `allow_large_removals` lifts the removal guard
    for this run only: each Dagster run it launches carries ALLOW_TAG, and the terminal says so
    first. The run's problems are also added to `problems` when given (the dry run reports
    them)."""
    prepare_home(data)
    handler = _show_progress(out)
    failures: list[RunProblem] = []
    runs, warned = [], (0, [])
    token = _THIS_RUN.set(runs)
    tags_token = _RUN_TAGS.set({ALLOW_TAG: "true"} if allow_large_removals else None)
    if allow_large_removals:
        print(
            f"segpipe: removal guard lifted for this run ({FORCE_FLAG}): held files apply and "
            f"syncs remove what they must; its Dagster runs carry the tag {ALLOW_TAG}=true",
            file=out,
        )
    try:
        with dg.DagsterInstance.get() as instance:
            ensure_warehouse_pool(instance)
            for line in fail_dead_runs(instance):
                print(f"segpipe: {line}", file=out)
            defs = build_definitions(data)
            refused_entries: list[str] = []
            pending = pending_uploads(data, out, refused_entries)
            print(f"segpipe: {len(pending)} new file(s) in {data.root}", file=out)
            if pending:
                tags = register_uploads(instance, pending)
                failures += run_job(defs, "process_upload_job", instance, tags, out=out)
            as_of_tags = {AS_OF_TAG: as_of.isoformat()} if as_of else None
            refreshed = _execute(defs, "refresh_segments_job", instance, as_of_tags, out=out)
            failures += _unexpected_failures(refreshed)
            if not failures:  # exports follow fresh segments, never stale ones
                failures += sync_exports(defs, instance, data, out=out)
                failures += deliver_exports(defs, instance, data, out=out)
            # A broken rule kept its segment as it was; the others refreshed and exported.
            failures += _broken_rules(refreshed)
            warned = _send_warnings(data, instance, runs, failures)
    finally:
        _THIS_RUN.reset(token)
        _RUN_TAGS.reset(tags_token)
        progress.removeHandler(handler)
    this_run = uploads_table(data).filter(pl.col("upload_id").is_in(pending))
    print_summary(data, this_run, out)
    _print_warnings(*warned, out)
    if problems is not None:
        problems.extend(failures)
    # Held syncs and missing segments: the run completed, they wait for a person (exit 2).
    waiting = [f for f in failures if f.waits]
    failures = [f for f in failures if not f.waits]
    for problem in failures + waiting:
        print(f"segpipe: {problem.line}", file=out)
    if failures:
        return ExitCode.FAILED
    refused = print_refused(this_run, out)
    if refused_entries:  # not files to apply: a link, a folder, a device (exit 2 all the same)
        print(
            f"segpipe: {len(refused_entries)} inbox entr(ies) refused, not regular files; "
            "see above",
            file=out,
        )
    return ExitCode.REJECTED if waiting or refused or refused_entries else ExitCode.OK


def sync_exports(
    defs: dg.Definitions, instance: dg.DagsterInstance, data: DataDir, out: TextIO | None = None
) -> list[RunProblem]:
    """One run of `sync_destinations_job` over every configured destination and segment; none when
    no destination would be sent anything new (see _exports_unchanged). Segments destinations
    name that do not exist are said by the run's step, or here when there is no run."""
    warnings: list[str] = []
    missing: list[MissingSegments] = []
    try:
        with connect(data.warehouse) as con:
            pairs = current_pairs(con, data, warnings.append, missing.append)
            tags = register_pairs(instance, pairs)
            unchanged = tags is not None and _exports_unchanged(con, instance, data, pairs)
    except DestinationError as error:
        return [RunProblem(f"{data.segments_yaml.name}: {error}", ProblemKind.SEGMENTS_YAML)]
    not_synced = [RunProblem(str(gone), ProblemKind.NOT_SYNCED) for gone in missing]
    if tags is None:
        return not_synced
    if unchanged:
        # What the run's step would have said, then one summary instead of a run (issue 18).
        for message in warnings:
            progress.warning(f"warning: {message}")
        print("segpipe: exports unchanged since their last sync: no sync run", file=out)
        return not_synced
    return run_job(defs, "sync_destinations_job", instance, tags, out=out)


def _exports_unchanged(con, instance: dg.DagsterInstance, data: DataDir, pairs) -> bool:
    """True when a sync run now would write nothing: every destination's pairs would be sent
    exactly what their latest sync sent (exports.sync.sync_is_unchanged), and the run would
    have nothing else to say (no failed blocking check to refuse on, no destination held for
    undelivered files). Costs the sync's own list computation, without files swapped or events
    stored."""
    if failed_blocking_checks(instance):
        return False
    at = datetime.now(UTC).replace(tzinfo=None)
    for destination in dict.fromkeys(p.destination for p in pairs):
        if undelivered_diffs(con, destination):
            return False
        mine = [p for p in pairs if p.destination == destination]
        if not sync_is_unchanged(con, data, destination, mine, at=at):
            return False
    return True


def _send_warnings(data: DataDir, instance, run_ids: list[str], failures: list[RunProblem]):
    """The warnings of this run's Dagster runs, and of a segments.yaml that stopped the sync
    before any run (issue 21); (messages sent, problems sending)."""
    from segpipe.defs.warnings.send import send_run_warnings, send_warnings
    from segpipe.notify.notices import Notice, NoticeKind

    config = [str(f) for f in failures if f.kind is ProblemKind.SEGMENTS_YAML]
    notices = [Notice(NoticeKind.SYNC_FAILED, "sync failed: segments.yaml", (f,)) for f in config]
    sent, problems = send_warnings(data, notices)
    runs = [run for run_id in run_ids if (run := instance.get_run_by_id(run_id))]
    more_sent, more_problems = send_run_warnings(data, instance, runs)
    return sent + more_sent, problems + more_problems


def _print_warnings(sent: int, problems: list[str], out: TextIO) -> None:
    if sent:
        print(f"segpipe: {sent} warning message(s) sent (segments.yaml `warnings:`)", file=out)
    for problem in problems:
        print(f"segpipe: warning not sent: {problem}", file=out)


def deliver_exports(
    defs: dg.Definitions, instance: dg.DagsterInstance, data: DataDir, out: TextIO | None = None
) -> list[RunProblem]:
    """One run of `deliver_exports_job` over every destination with `deliver:` (issue 21)."""
    try:
        names = [d.name for d in delivering(data)]
    except DestinationError:
        return []  # the sync has reported it
    tags = register_destinations(instance, names)
    if tags is None:
        return []
    return run_job(defs, "deliver_exports_job", instance, tags, out=out)


def run_job(
    defs: dg.Definitions,
    name: str,
    instance: dg.DagsterInstance,
    tags: dict | None,
    out: TextIO | None = None,
) -> list[RunProblem]:
    """Run job `name` in this process on `instance`; the unexpected failures it had."""
    return _unexpected_failures(_execute(defs, name, instance, tags, out))


def _execute(
    defs: dg.Definitions,
    name: str,
    instance: dg.DagsterInstance,
    tags: dict | None,
    out: TextIO | None = None,
) -> dg.ExecuteInProcessResult:
    """Run job `name` in this process on `instance`. Waits first for the `duckdb` pool (saying
    for which run); the run is tagged with this process, so that a later start can tell when it
    was killed, and with `segpipe run` when that sends its warnings itself."""
    runs = _THIS_RUN.get()
    if runs is not None:
        tags = {**(tags or {}), **(_RUN_TAGS.get() or {}), WARNED_BY_TAG: "segpipe run"}
    wait_for_pool(instance, out or sys.stdout)
    result = defs.resolve_job_def(name).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        tags={**(tags or {}), **process_tags()},
    )
    if runs is not None:
        runs.append(result.run_id)
    return result


def _broken_rules(result: dg.ExecuteInProcessResult) -> list[RunProblem]:
    """The segment rules the segment_rules_evaluate check found broken in this refresh."""
    return [
        RunProblem(
            f"segments.yaml rules not evaluated (those segments kept their members): "
            f"{evaluation.description}"
        )
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == "segment_rules_evaluate" and not evaluation.passed
    ]


def _unexpected_failures(result: dg.ExecuteInProcessResult) -> list[RunProblem]:
    """The run's step failures, or that it did not finish (a rejected file is not one: it is
    an outcome, in the uploads table); a sync the removal guard held, or a segment a
    destination names that does not exist, is said as it is."""
    found = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        failure = event.step_failure_data
        said = _said_as_they_are(failure.user_failure_data)
        found += said
        if said and DESTINATIONS_FAILED not in failure.user_failure_data.metadata:
            continue
        error = failure.error
        while error and error.cause:
            error = error.cause
        found.append(
            RunProblem(f"{event.step_key}: {error.message.strip() if error else 'failed'}")
        )
    if not result.success and not found and not any(e.is_step_failure for e in result.all_events):
        found.append(RunProblem("run did not finish"))
    return found


def _said_as_they_are(failure_data) -> list[RunProblem]:
    """The sync step's problems that are not failures: the removal guard's messages and the
    missing segments' (exports.assets._fail), each as its own line."""
    metadata = failure_data.metadata if failure_data else {}
    held = metadata[DESTINATIONS_HELD].value if DESTINATIONS_HELD in metadata else []
    missing = metadata[SEGMENTS_MISSING].value if SEGMENTS_MISSING in metadata else {}
    return [RunProblem(message, ProblemKind.HELD) for message in held] + [
        RunProblem(message, ProblemKind.NOT_SYNCED) for message in missing.values()
    ]


def print_status(data: DataDir, out: TextIO, recent: int | None = None) -> None:
    """`segpipe status`: the `recent` uploads settled last (every one when None; the command's
    default is cli.RECENT_UPLOADS), then segments and exports. Looks only, so it opens the
    warehouse read-only (no writer's lock)."""
    with connect(data.warehouse, read_only=True) as con:
        recent_ones = recent_uploads(con, recent)
        hidden = upload_count(con) - recent_ones.height
    print_summary(data, recent_ones, out, ids=True, read_only=True, hidden=hidden)
