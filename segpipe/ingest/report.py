"""What a person reads about an upload: the errors file, the outcome counts and reasons
tables, and masked previews (Markdown metadata the Dagster layer shows as such)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from segpipe.ingest import normalize
from segpipe.ingest.masking import mask_expr
from segpipe.ingest.reader import LINE, RECEIVED
from segpipe.ingest.validate import OUTCOME, REASON
from segpipe.vocabulary import RowOutcome

REPORT_COLUMNS = ("line", "outcome", "reason")
OUTCOMES = tuple(outcome.value for outcome in RowOutcome)
# Rows of a stage's reasons table in the Dagster UI. A reason may quote the value a row gave
# ("no member_id M-05275302"), so a big file can have about as many reasons as rows: the table
# keeps the most common (README, "Design measurements"); the errors file has every row.
REASONS_SHOWN = 50
PERSONAL = {"email": normalize.mask_email, "phone": normalize.mask_phone}


class Markdown(str):
    """Metadata text meant to be rendered as Markdown (a table of reasons, a preview)."""


def write_atomically(frame: pl.DataFrame, path: Path) -> None:
    """Write under a temporary name, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    frame.write_csv(partial)
    os.replace(partial, path)


def error_rows(refused: pl.DataFrame, raw_batches: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """One row per rejected or ignored input row: line (the physical line it starts on),
    outcome, reason, its cells (trimmed; empty for a row whose fields could not be placed), and
    `received`, the row's text exactly as in the file, every field.

    `refused` holds `_line`, `_outcome`, `_reason` of those rows; `raw_batches` their rows as
    received, from a re-read of the file that keeps only those lines (no whole raw frame). The
    reason is a message built from the file (`no member_id jane@example.org`): masked like
    every other (SPEC section 3); the row's own cells beside it stay as received."""
    refused = refused.select(LINE, OUTCOME, mask_expr(pl.col(REASON))).sort(LINE)
    received = [
        batch.select(LINE, pl.exclude("^_.*$"), pl.col(f"^{RECEIVED}$")) for batch in raw_batches
    ]
    raw = pl.concat(received, how="diagonal_relaxed")
    # A file's own `reason` column (a suppression list's) must not clash with the report's.
    raw = raw.rename({c: f"received_{c}" for c in REPORT_COLUMNS if c in raw.columns})
    return (
        refused.join(raw, on=LINE, how="left")
        .sort(LINE)
        .rename({LINE: "line", OUTCOME: "outcome", REASON: "reason", RECEIVED: "received"})
    )


def without_cells(rows: pl.DataFrame, reason_prefix: str) -> pl.DataFrame:
    """The errors rows with the received cells emptied where the reason starts with
    `reason_prefix`: a row naming an erased person is reported by line and reason only."""
    hide = pl.col("reason").str.starts_with(reason_prefix)
    raw = [c for c in rows.columns if c not in REPORT_COLUMNS]
    return rows.with_columns(pl.when(~hide).then(pl.col(c)).alias(c) for c in raw)


def file_error_row(problem: str, outcome: RowOutcome = RowOutcome.REJECTED) -> pl.DataFrame:
    """The errors report of a file refused whole: one row, no line, the problem."""
    return pl.DataFrame({"line": [None], "outcome": [outcome.value], "reason": [problem]})


def masked(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every email and phone column masked (j***@example.org, ***-***-7890),
    and every email or phone inside the other columns too, as text (a phone given as a foreign
    interest or a member_id); `_line` stays a number."""
    return frame.with_columns(
        [mask(pl.col(name)).alias(name) for name, mask in PERSONAL.items() if name in frame.columns]
        + [
            mask_expr(pl.col(name).cast(pl.String))
            for name, dtype in frame.schema.items()
            if name not in PERSONAL and name != LINE and not dtype.is_nested()
        ]
    )


def markdown_table(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "_no rows_"
    cells = frame.cast(pl.String).fill_null("")
    lines = ["| " + " | ".join(cells.columns) + " |", "|" + " --- |" * cells.width]
    lines += ["| " + " | ".join(row) + " |" for row in cells.iter_rows()]
    return "\n".join(lines)


def tally(grouped: pl.DataFrame) -> tuple[dict[str, int], dict[str, Markdown]]:
    """(rows per outcome, every one of OUTCOMES present; the reasons table) from `grouped`:
    `_outcome` (null = applied), `_reason`, `len` rows, one row per pair."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for outcome, count in grouped.group_by(OUTCOME).agg(pl.col("len").sum()).iter_rows():
        counts[outcome or RowOutcome.APPLIED.value] = count
    return counts, reasons(grouped.filter(pl.col(REASON).is_not_null()))


def reasons(grouped: pl.DataFrame) -> dict[str, Markdown]:
    """{"reasons": the Markdown table of rows counted per `_reason` (`len`)}, reasons masked,
    the REASONS_SHOWN most common ones and then one row counting the rest; empty when there
    are none."""
    # Reasons quote values (a segment name, an id): masked like every message from the file.
    grouped = grouped.group_by(mask_expr(pl.col(REASON))).agg(pl.col("len").sum())
    if grouped.is_empty():
        return {}
    # Most common first, then by reason: the order polars' reason_counts gives.
    table = grouped.sort("len", REASON, descending=[True, False]).select(
        pl.col(REASON).alias("reason"), pl.col("len").alias("rows")
    )
    if table.height > REASONS_SHOWN:
        rest = table.slice(REASONS_SHOWN)
        other = f"{rest.height} other reasons (each refused row is in the errors file)"
        table = pl.concat(
            [
                table.head(REASONS_SHOWN),
                pl.DataFrame({"reason": [other], "rows": [rest["rows"].sum()]}),
            ],
            how="vertical_relaxed",
        )
    return {"reasons": Markdown(markdown_table(table))}


def preview(rows: pl.DataFrame) -> Markdown:
    """`rows` (an upload's first accepted rows) as a Markdown table, emails and phones masked,
    internal columns left out but `_line`."""
    shown = [c for c in rows.columns if not c.startswith("_") or c == LINE]
    return Markdown(markdown_table(masked(rows.select(shown))))
