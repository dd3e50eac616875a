"""The life of received files: raw -> validated -> resolved -> applied, one partition each."""

from concurrent.futures import Future, ThreadPoolExecutor

import dagster as dg

from segpipe import batch
from segpipe.console import describe
from segpipe.defs.common import OWNERS, WAREHOUSE_POOL
from segpipe.defs.recovery import mark_run_process
from segpipe.defs.resources import DataDirResource, Warehouse
from segpipe.defs.uploads.checks import batch_checks, upload_check_specs
from segpipe.defs.uploads.metadata import standard_metadata
from segpipe.defs.uploads.partitions import uploads_partitions
from segpipe.ingest.masking import display_name
from segpipe.ingest.receive import archived_file, arrival_key
from segpipe.ingest.report import Markdown
from segpipe.pipeline import Stage, UploadReport, progress
from segpipe.vocabulary import REFUSED
from segpipe.warehouse.guard import ALLOW_TAG


def _stage(stage: Stage, description: str, kinds: set[str], after: Stage | None = None):
    return dg.AssetSpec(
        stage.value,
        description=description,
        deps=[after.value] if after else [],
        group_name="uploads",
        owners=OWNERS,
        kinds=kinds,
        partitions_def=uploads_partitions,
        skippable=True,
    )


def _stages() -> list[dg.AssetSpec]:
    # Built in a function: the defs loader would take module-level specs for assets of their own.
    return [
        _stage(
            Stage.RAW,
            "A received file: archived bytes, checksum, kind, rows as text; its `status` "
            "(applied, rejected, held, duplicate) and `problem`.",
            {"csv"},
        ),
        _stage(
            Stage.VALIDATED,
            "Every row in canonical form, checked against its kind's pandera schema.",
            {"polars", "pandera"},
            after=Stage.RAW,
        ),
        _stage(
            Stage.RESOLVED,
            "Valid rows matched to people and interests, or ignored, rejected or superseded.",
            {"duckdb"},
            after=Stage.VALIDATED,
        ),
        _stage(
            Stage.APPLIED,
            "The upload's changes in the warehouse tables, applied in one transaction.",
            {"duckdb"},
            after=Stage.RESOLVED,
        ),
    ]


def _metadata(values) -> dict[str, dg.MetadataValue]:
    return {
        key: dg.MetadataValue.md(value) if isinstance(value, Markdown) else value
        for key, value in values.items()
    }


def _materialize(context: dg.AssetExecutionContext, outcome: UploadReport, catalog: str) -> None:
    kind = outcome.stages.get(Stage.RAW, {}).get("kind")
    for stage, metadata in outcome.stages.items():
        standard = standard_metadata(stage, metadata, kind, catalog)
        context.log_event(
            dg.AssetMaterialization(
                stage.value,
                partition=outcome.upload_id,
                metadata={**_metadata(metadata), **standard},
            )
        )


@dg.multi_asset(
    name="process_uploads",
    specs=_stages(),
    partitions_def=uploads_partitions,
    # A batch of files runs as one run that takes them in arrival order; each file's four
    # stages run in one step so that the file applies fully or not at all.
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
    pool=WAREHOUSE_POOL,
    check_specs=upload_check_specs(),
)
def process_uploads(
    context: dg.AssetExecutionContext, data_dir: DataDirResource, warehouse: Warehouse
):
    """Takes each received file through validation, resolution and its one transaction.

    A file rejected or held is an outcome, not a failure: its partitions say so in their
    metadata (`raw_upload`'s `status` and `problem`), the step succeeds, and the
    `files_applied` check fails naming it."""
    mark_run_process(context)
    upload_ids = sorted(
        context.partition_keys,
        key=lambda upload_id: arrival_key(archived_file(data_dir.paths, upload_id).path),
    )
    refused, lines = [], []
    # One connection for the whole run: reopening the DuckDB file per upload checkpoints and
    # reloads it each time, which is most of a small file's cost. Each file applies fully or
    # not at all: in its own transaction, or with the small files batched beside it (batch.py).
    try:
        with warehouse.get_connection() as con, _EventWriter(context) as events:
            catalog = con.execute("SELECT current_database()").fetchone()[0]
            outcomes = batch.process_uploads(
                data_dir.paths,
                con,
                upload_ids,
                context.run.run_id,
                allow_large_removals=context.run.tags.get(ALLOW_TAG) == "true",
            )
            for position, outcome in enumerate(outcomes, start=1):
                events.materialize(outcome, catalog)
                refused += _report(outcome, position, len(upload_ids), lines)
            checks = batch_checks(con, data_dir.paths, refused)
    finally:
        # One log event for the batch, not one per file: each event is a write to the event
        # log, a measurable part of a small file's cost (the materializations stay per file).
        if lines:
            context.log.info("\n".join(lines))
    yield from checks


class _EventWriter:
    """Writes each file's materializations to the event log on a thread of its own while the
    next file is processed: storing an event is Python and SQLite work that DuckDB (which
    releases the GIL while it runs a statement) need not wait for. One thread, so the events
    keep the files' order; leaving the block waits for every write and raises the first error.

    Dagster only hands a step's logged events on when the step's generator yields, which
    `process_uploads` does after this block: the thread never races that hand-over."""

    def __init__(self, context: dg.AssetExecutionContext):
        self._context = context
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="segpipe-events")
        self._writes: list[Future] = []

    def materialize(self, outcome: UploadReport, catalog: str) -> None:
        self._writes.append(self._pool.submit(_materialize, self._context, outcome, catalog))

    def __enter__(self) -> "_EventWriter":
        return self

    def __exit__(self, error_type, *_) -> None:
        self._pool.shutdown(wait=True)  # files applied before an error still get their events
        if error_type is None:
            for write in self._writes:
                write.result()


def _report(outcome: UploadReport, position: int, total: int, lines: list[str]):
    """A progress line for one file; its rejection, if it was rejected."""
    line = f"[{position}/{total}] {describe(outcome)}"
    progress.info(line)
    lines.append(line)
    refused = outcome.status in REFUSED
    return [f"{display_name(outcome.file_name)}: {outcome.error}"] if refused else []
