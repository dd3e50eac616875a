"""The warehouse's referential invariants, counted: what the `references_resolve` check reports.

Every membership names an existing person and an existing segment or interest, and `cons_id`,
`member_id` and `email` each identify one constituent. Each problem is counted over whole tables
(one check covers every upload ever applied), in ways that cost what the warehouse's size needs:

- Memberships naming no person or no interest. segpipe assigns cons_ids and interest_ids from a
  high-water mark and never reuses them, so the ids of `constituents` (of `interests`) fill most
  of [min, max]. The ids missing from that range (people forgotten, or never kept) are found by
  one anti-join of the range against the table; a membership dangles exactly when its id is
  outside the range or one of those gaps. That reads the 50M-row membership table once with a
  small filter instead of probing each of its rows against every person. Ids that fill little of
  their range (not assigned by segpipe) take the plain anti-join.
- Duplicate cons_ids come from the same counts: distinct ids = range size - gaps.
- Duplicate emails and member ids: grouped by a 64-bit hash of the text first (narrower than the
  text); only when two rows share a hash are the texts themselves grouped, so a hash collision
  never reports a duplicate that is not there.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import polars as pl

from segpipe.warehouse.sql import quote

# Below this share of their [min, max] range filled, ids are not the dense ones segpipe assigns.
DENSE_SHARE = 0.5


@dataclass(frozen=True)
class _Ids:
    """The ids of `key` in `table`: how many rows, their range, and (dense ids only) the temp
    table `gaps` of the ids missing from the range."""

    table: str
    key: str
    rows: int
    lo: int | None
    hi: int | None
    gaps: str | None

    def missing_from(self, con: duckdb.DuckDBPyConnection, referring: str) -> int:
        """Rows of `referring` whose `key` names no row of the table."""
        key = quote(self.key)
        if self.gaps is None:
            return _scalar(
                con,
                f"SELECT count(*) FROM {referring} r ANTI JOIN {self.table} t ON t.{key} = r.{key}",
            )
        return _scalar(
            con,
            f"SELECT count(*) FROM {referring} WHERE {key} < {self.lo} OR {key} > {self.hi} "
            f"OR {key} IN (SELECT id FROM {self.gaps})",
        )

    def repeated(self, con: duckdb.DuckDBPyConnection) -> int:
        """Rows beyond the first of each id."""
        if self.gaps is None:
            return _duplicates(con, self.table, self.key, self.key)
        distinct = (self.hi - self.lo + 1) - _scalar(con, f"SELECT count(*) FROM {self.gaps}")
        return self.rows - distinct


@contextmanager
def _ids(con: duckdb.DuckDBPyConnection, table: str, key: str):
    rows, lo, hi = con.execute(
        f"SELECT count({quote(key)}), min({quote(key)}), max({quote(key)}) FROM {table}"
    ).fetchall()[0]
    if not rows or rows < DENSE_SHARE * (hi - lo + 1):
        yield _Ids(table, key, rows, lo, hi, None)
        return
    gaps = f"_integrity_gaps_{table}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {gaps} AS SELECT range AS id "
        f"FROM range({int(lo)}, {int(hi) + 1}) ANTI JOIN {table} t ON t.{quote(key)} = range"
    )
    try:
        yield _Ids(table, key, rows, int(lo), int(hi), gaps)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {gaps}")


def broken_references(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per problem: `problem` (VARCHAR, what is wrong), `rows` (BIGINT, how many rows
    show it; 0 when none). Reads whole tables; writes nothing but temp tables it drops."""
    with (
        _ids(con, "constituents", "cons_id") as people,
        _ids(con, "interests", "interest_id") as interests,
    ):
        counts = [
            ("segment member names an unknown person",
             people.missing_from(con, "segment_memberships")),
            ("segment member names an unknown segment", _scalar(con, UNKNOWN_SEGMENT)),
            ("interest membership names an unknown person", people.missing_from(con, MEMBERSHIPS)),
            ("interest membership names an unknown interest",
             interests.missing_from(con, MEMBERSHIPS)),
            ("interest group names an unknown interest",
             interests.missing_from(con, "interest_groups")),
            ("interest group missing from segments", _scalar(con, GROUP_WITHOUT_SEGMENT)),
            ("cons_id shared by several constituents", people.repeated(con)),
            ("member_id shared by several constituents", _shared(con, "member_id")),
            ("email shared by several constituents", _shared(con, "email")),
        ]  # fmt: skip
    return pl.DataFrame(counts, schema={"problem": pl.String, "rows": pl.Int64}, orient="row")


MEMBERSHIPS = "interest_memberships"
UNKNOWN_SEGMENT = "SELECT count(*) FROM segment_memberships ANTI JOIN segments USING (segment_id)"
GROUP_WITHOUT_SEGMENT = (
    "SELECT count(*) FROM interest_groups g ANTI JOIN segments s ON s.segment_id = g.group_id"
)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


def _shared(con: duckdb.DuckDBPyConnection, column: str) -> int:
    """Constituent rows beyond the first of each non-null `column` value (text)."""
    if not _duplicates(con, "constituents", column, f"hash({column})"):
        return 0
    return _duplicates(con, "constituents", column, column)


def _duplicates(con: duckdb.DuckDBPyConnection, table: str, column: str, key: str) -> int:
    return _scalar(
        con,
        f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {table} "
        f"WHERE {quote(column)} IS NOT NULL GROUP BY {key} HAVING n > 1)",
    )
