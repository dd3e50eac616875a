"""The exports part of `segpipe run` and `segpipe status`: each pair's latest sync (printed by
segpipe.console)."""

from __future__ import annotations

import duckdb
import polars as pl

from segpipe.warehouse.segments import LABEL
from segpipe.warehouse.sql import frame


def latest_syncs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """`segment` is the segment's label (`VIP (shop)`), as `segpipe status` names segments: a
    csv destination syncing two domains' `VIP` lists two lines that must tell them apart. A
    deleted segment keeps the name it was synced under."""
    return frame(
        con,
        f"""
        SELECT y.destination, coalesce(s.label, y.segment) AS segment, y."at", y.members,
               y.adds, y.removes, y.skipped_no_key, y.path,
               coalesce(y.skipped_no_consent, 0) AS skipped_no_consent
        FROM syncs y LEFT JOIN (SELECT segment_id, name, {LABEL} AS label FROM segments) s
            -- the name too: a deleted segment's id can be given to a new one
            ON s.segment_id = y.segment_id AND s.name = y.segment
        QUALIFY row_number() OVER (PARTITION BY y.destination, y.segment_id ORDER BY y."at" DESC)
            = 1
        ORDER BY destination, segment
        """,
    )
