"""The floor: the least a bare DuckDB script must do to apply a segmentation upload.

Read the CSV, resolve people (the text member_id, else email) and interests (name, ID,
cross-reference), keep each person's last row per interest, write the changes to
membership_history, and delete-then-insert them into interest_memberships, in one transaction.
No Dagster, no polars, no row-level report: what segpipe adds on top of this is what the
benchmark measures.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from segpipe.ingest.normalize import OPT_IN_WORDS, OPT_OUT_WORDS

RESOLVE = """
CREATE TEMP TABLE _floor AS
WITH up AS (
    SELECT row_number() OVER () AS line, *
    FROM read_csv(?, header = true, all_varchar = true)
), matched AS (
    SELECT up.line,
           coalesce(by_member.cons_id, by_email.cons_id) AS cons_id,
           coalesce(by_name.interest_id, by_iid.interest_id, x.interest_id) AS interest_id,
           CASE WHEN lower(trim(up.opt)) IN (SELECT unnest(?::VARCHAR[])) THEN 'opted_in'
                WHEN lower(trim(up.opt)) IN (SELECT unnest(?::VARCHAR[])) THEN 'opted_out'
           END AS status
    FROM up
    LEFT JOIN constituents by_member ON by_member.member_id = up.member_id
    LEFT JOIN constituents by_email
      ON up.member_id IS NULL AND by_email.email = lower(trim(up.email))
    LEFT JOIN interests by_name ON lower(by_name.name) = lower(up.interest_name)
    LEFT JOIN interests by_iid ON up.interest_name IS NULL
     AND by_iid.interest_id = try_cast(up.interest_id AS BIGINT)
    LEFT JOIN interest_xref x ON up.interest_name IS NULL AND up.interest_id IS NULL
     AND x.foreign_source = coalesce(up.foreign_source, 'default')
     AND x.foreign_value = up.foreign_interest
)
SELECT m.cons_id, m.interest_id, m.status,
       old.status AS previous_status, old.since AS previous_since
FROM (
    SELECT * FROM matched
    WHERE cons_id IS NOT NULL AND interest_id IS NOT NULL AND status IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY cons_id, interest_id ORDER BY line DESC) = 1
) m
LEFT JOIN interest_memberships old
  ON old.cons_id = m.cons_id AND old.interest_id = m.interest_id
"""


def apply_upload(database: Path, upload: Path) -> int:
    """Apply `upload` to the warehouse at `database`; returns the rows applied."""
    con = duckdb.connect(str(database), config={"memory_limit": "1GB"})
    try:
        con.execute(RESOLVE, [str(upload), OPT_IN_WORDS, OPT_OUT_WORDS])
        con.execute("BEGIN TRANSACTION")
        con.execute(
            """
            INSERT INTO membership_history
            SELECT 'floor', NULL, cons_id, interest_id, NULL, status, now()::TIMESTAMP
            FROM _floor WHERE previous_status IS DISTINCT FROM status
            """
        )
        con.execute(
            """
            DELETE FROM interest_memberships m USING _floor f
            WHERE m.cons_id = f.cons_id AND m.interest_id = f.interest_id
            """
        )
        applied = con.execute(
            """
            INSERT INTO interest_memberships
            SELECT cons_id, interest_id, status,
                   CASE WHEN previous_status = status THEN previous_since
                        ELSE now()::TIMESTAMP END,
                   'floor', now()::TIMESTAMP
            FROM _floor
            """
        ).fetchone()[0]
        con.execute("COMMIT")
        return applied
    finally:
        con.close()
