"""What a finished run has to say: its notices, read from the run's Dagster event log.

One home for turning runs into warnings, used by the sensors (the daemon, `dagster dev`) and by
`segpipe run` (in-process, no daemon), so both send the same messages:
- `raw_upload` materializations whose `status` is rejected or held -> FILE_REJECTED (a
  rejection is an outcome of a successful run, not a step failure);
- `sync_exports` / `deliver_exports` failures -> SYNC_FAILED / DELIVERY_FAILED per destination
  (a destination naming segments that do not exist too), a held sync -> RUN_FAILED;
- any other step failure, or a run that failed without one -> RUN_FAILED;
- a failed `segment_sizes_are_steady` check (severity WARN) -> SEGMENT_SIZE_MOVED;
- `segment_export` materializations -> EXPORT_READY per destination (sent to who asks for it).
"""

from __future__ import annotations

from collections import defaultdict

import dagster as dg
from dagster._core.events import DagsterEventType

from segpipe.defs.common import RAW_UPLOAD, SEGMENT_EXPORT
from segpipe.defs.exports.assets import DESTINATIONS_FAILED, DESTINATIONS_HELD, SEGMENTS_MISSING
from segpipe.notify.notices import Notice, NoticeKind
from segpipe.vocabulary import REFUSED, UploadStatus

SIZE_CHECK = "segment_sizes_are_steady"
# The upload statuses a person is told about (uploads.status; `held`: the removal guard).
_STEP_KINDS = {
    "sync_exports": NoticeKind.SYNC_FAILED,
    "deliver_exports": NoticeKind.DELIVERY_FAILED,
}
_VERBS = {NoticeKind.SYNC_FAILED: "sync", NoticeKind.DELIVERY_FAILED: "delivery"}


def run_notices(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[Notice]:
    """Every notice of `run`, problems first."""
    records = instance.all_logs(run.run_id)
    events = [r.dagster_event for r in records if r.dagster_event is not None]
    notices: list[Notice] = _files_rejected(events)
    for event in events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            notices += _step_failure(run, event)
    if run.is_failure and not notices:
        notices.append(
            Notice(NoticeKind.RUN_FAILED, f"run {run.job_name} failed", (f"run id {run.run_id}",))
        )
    checks = [e for e in events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    notices += [n for e in checks if (n := _size_check(e.event_specific_data))]
    notices += _exports_ready(events)
    return notices


def _step_failure(run: dg.DagsterRun, event) -> list[Notice]:
    failure = event.step_failure_data
    user = failure.user_failure_data
    description = (user.description or "") if user else ""
    metadata = user.metadata if user else {}
    kind = _STEP_KINDS.get(event.step_key)
    notices = _per_destination(run, kind, metadata) if kind else []
    if DESTINATIONS_HELD in metadata:  # the removal guard's messages, as `segpipe run` says them
        subject = f"run {run.job_name} failed in step {event.step_key}"
        lines = (*metadata[DESTINATIONS_HELD].value, f"run id {run.run_id}")
        notices.append(Notice(kind or NoticeKind.RUN_FAILED, subject, lines))
    if notices:
        return notices
    error = failure.error
    while error and error.cause:
        error = error.cause
    reason = error.message.strip() if error else description or "failed"
    return [
        Notice(
            kind or NoticeKind.RUN_FAILED,
            f"run {run.job_name} failed in step {event.step_key}",
            (reason, f"run id {run.run_id}"),
        )
    ]


def _per_destination(run: dg.DagsterRun, kind: NoticeKind, metadata) -> list[Notice]:
    """One notice per destination whose sync (or delivery) failed, or that names segments that
    do not exist (a sync error for that destination alone, as Census and Hightouch say a sync
    whose model is gone), each to that destination's recipients too."""
    reasons: dict[str, list[str]] = defaultdict(list)
    for key in (DESTINATIONS_FAILED, SEGMENTS_MISSING):
        for name, reason in (metadata[key].value if key in metadata else {}).items():
            reasons[name].append(reason)
    return [
        Notice(
            kind,
            f"{_VERBS[kind]} failed for destination {name}",
            (*said, f"run {run.job_name} {run.run_id}"),
            destination=name,
        )
        for name, said in reasons.items()
    ]


def _files_rejected(events) -> list[Notice]:
    """One notice for the files of the run rejected or held: "file: problem" each, read from
    their `raw_upload` materializations' `status` and `problem` metadata."""
    rejected, held = [], 0
    for event in events:
        if event.event_type != DagsterEventType.ASSET_MATERIALIZATION:
            continue
        materialization = event.step_materialization_data.materialization
        metadata = materialization.metadata
        if materialization.asset_key != RAW_UPLOAD or "status" not in metadata:
            continue
        if metadata["status"].value in REFUSED:
            rejected.append(f"{metadata['file'].value}: {metadata['problem'].value}")
            held += metadata["status"].value == UploadStatus.HELD
    if not rejected:
        return []
    # A held file is not refused for good: the removal guard waits for someone to say so.
    title = ", ".join(
        f"{count} file(s) {word}"
        for count, word in ((len(rejected) - held, "rejected"), (held, "held"))
        if count
    )
    return [
        Notice(
            NoticeKind.FILE_REJECTED,
            title,
            (*rejected, "The raw files are archived; see rejected/ for reports."),
            counts={"files_rejected": len(rejected)},
        )
    ]


def _size_check(evaluation) -> Notice | None:
    if evaluation.check_name != SIZE_CHECK or evaluation.passed:
        return None
    metadata = evaluation.metadata
    moved = int(metadata["segments_moved"].value) if "segments_moved" in metadata else 0
    table = str(metadata["moves"].value) if "moves" in metadata else ""
    limit = metadata["max_change"].value if "max_change" in metadata else None
    return Notice(
        NoticeKind.SEGMENT_SIZE_MOVED,
        f"{moved} segment(s) changed size by more than {limit:.0%} since the previous refresh"
        if limit is not None
        else f"{moved} segment(s) changed size sharply",
        ("A feed may have dropped or doubled its audience:", table),
        counts={"segments_moved": moved},
    )


def _exports_ready(events) -> list[Notice]:
    """One notice per destination whose segments were exported in the run, with totals."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for event in events:
        if event.event_type != DagsterEventType.ASSET_MATERIALIZATION:
            continue
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key != SEGMENT_EXPORT:
            continue
        metadata = materialization.metadata
        counts = totals[str(metadata["destination"].value)]
        counts["segments"] += 1
        for name in ("members", "adds", "removes"):
            counts[name] += int(metadata[name].value)
    return [
        Notice(
            NoticeKind.EXPORT_READY,
            f"export ready for destination {name}",
            (
                f"{counts['segments']} segment(s): {counts['members']} member(s), "
                f"{counts['adds']} add(s), {counts['removes']} remove(s)",
            ),
            destination=name,
            counts=dict(counts),
        )
        for name, counts in totals.items()
    ]
