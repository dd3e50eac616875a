"""The exports part of `segpipe run` and `segpipe status`: each pair's latest sync (printed by
segpipe.console)."""

from __future__ import annotations

import duckdb
import polars as pl

from segpipe.warehouse.sql import frame


def latest_syncs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The latest sync of each destination and segment the destination still receives."""
    return frame(
        con,
        """
        SELECT * EXCLUDE (retired) FROM (
            SELECT destination, segment, "at", members, adds, removes, skipped_no_key, path,
                   coalesce(skipped_no_consent, 0) AS skipped_no_consent,
                   coalesce(retired, FALSE) AS retired
            FROM syncs
            QUALIFY row_number() OVER (PARTITION BY destination, segment_id ORDER BY "at" DESC) = 1
        )
        -- A pair whose removal was sent (its segment deleted or no longer sent) is gone.
        WHERE NOT retired
        ORDER BY destination, segment
        """,
    )
