"""The exports part of `segpipe run` and `segpipe status`: each pair's latest sync."""

from __future__ import annotations

from typing import TextIO

import duckdb
import polars as pl

from segpipe.warehouse.sql import frame


def latest_syncs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return frame(
        con,
        """
        SELECT destination, segment, "at", members, adds, removes, skipped_no_key, path,
               coalesce(skipped_no_consent, 0) AS skipped_no_consent
        FROM syncs
        QUALIFY row_number() OVER (PARTITION BY destination, segment_id ORDER BY "at" DESC) = 1
        ORDER BY destination, segment
        """,
    )


def print_exports(syncs: pl.DataFrame, out: TextIO) -> None:
    print("\nExports (latest sync of each destination and segment)", file=out)
    if syncs.is_empty():
        print("  (none: no destinations in segments.yaml, or not synced yet)", file=out)
    for row in syncs.iter_rows(named=True):
        label = f"{row['destination']} / {row['segment']}"
        skipped = f"  skipped (no key) {row['skipped_no_key']}" if row["skipped_no_key"] else ""
        if row["skipped_no_consent"]:
            skipped += f"  skipped (no consent) {row['skipped_no_consent']}"
        print(
            f"  {label:<48} members {row['members']:>6}  adds {row['adds']:>6}  "
            f"removes {row['removes']:>6}{skipped}",
            file=out,
        )
