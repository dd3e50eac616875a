"""The exports part of `segpipe run` and `segpipe status`: each pair's latest sync (printed by
segpipe.console)."""

from __future__ import annotations

import duckdb
import polars as pl

from segpipe.warehouse.segments import LABELED_SEGMENTS
from segpipe.warehouse.sql import frame


def latest_syncs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The latest sync of each destination and segment the destination still receives.
    `segment` is the segment's label (`VIP (shop)`), as `segpipe status` names segments: a csv
    destination syncing two domains' `VIP` lists two lines that must tell them apart. A deleted
    segment keeps the name it was synced under."""
    return frame(
        con,
        f"""
        SELECT * EXCLUDE (retired) FROM (
            SELECT y.destination, coalesce(s.label, y.segment) AS segment, y."at", y.members,
                   y.adds, y.removes, y.skipped_no_key, y.path,
                   coalesce(y.skipped_no_consent, 0) AS skipped_no_consent,
                   coalesce(y.retired, FALSE) AS retired
            FROM syncs y LEFT JOIN {LABELED_SEGMENTS} s
                ON s.segment_id = y.segment_id AND s.name = y.segment
            QUALIFY row_number() OVER (
                PARTITION BY y.destination, y.segment_id ORDER BY y."at" DESC
            ) = 1
        )
        -- A pair whose removal was sent (its segment deleted or no longer sent) is gone.
        WHERE NOT retired
        ORDER BY destination, segment
        """,
    )
