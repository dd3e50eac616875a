"""Operations on applied uploads that are not a new file: undoing one (segpipe undo)."""

from datetime import UTC, datetime

import dagster as dg

from segpipe.defs.common import WAREHOUSE_POOL
from segpipe.defs.resources import Warehouse
from segpipe.ingest.masking import display_name
from segpipe.warehouse.undo import UndoRefused, undo_summary, undo_upload


class UndoUploadConfig(dg.Config):
    upload_id: str  # as shown by `segpipe status` and the uploads table


@dg.op(pool=WAREHOUSE_POOL)
def undo_upload_op(context: dg.OpExecutionContext, config: UndoUploadConfig, warehouse: Warehouse):
    """Reverses one applied upload in one transaction, from its before-images; refused (and
    nothing changed) when later uploads changed the same rows."""
    try:
        with warehouse.get_connection() as con:
            result = undo_upload(
                con,
                config.upload_id,
                at=datetime.now(UTC).replace(tzinfo=None),
                run_id=context.run.run_id,
            )
    except UndoRefused as refusal:
        raise dg.Failure(description=f"undo refused: {refusal}", allow_retries=False) from None
    context.log.info(undo_summary(result))
    yield dg.Output(
        None,
        metadata={
            "upload_id": result.upload_id,
            "file": display_name(result.file_name),
            "history_rows": result.history_rows,
            **{f"restored_{t}": n for t, n in result.rows_restored.items() if n},
            **{f"removed_{t}": n for t, n in result.rows_removed.items() if n},
        },
    )
