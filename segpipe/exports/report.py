"""The exports part of `segpipe run` and `segpipe status`: each pair's latest sync (printed by
segpipe.console)."""

from __future__ import annotations

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
