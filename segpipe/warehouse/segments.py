"""Reading and changing segments and their members."""

from __future__ import annotations

import duckdb
import polars as pl

from segpipe.warehouse.sql import frame


def segment_sizes(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return frame(
        con,
        """
        SELECT s.segment_id, s.name, s.kind, count(m.member_id) AS members
        FROM segments s LEFT JOIN segment_members m USING (segment_id)
        GROUP BY ALL ORDER BY s.kind, s.name
        """,
    )
