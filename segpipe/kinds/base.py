"""What every upload kind provides: how to validate its rows, resolve them, and apply them.

validate: raw string frame -> canonical frame with `_outcome`/`_reason` for refused rows (pure).
resolve: the table of validated rows + warehouse (read only) -> the resolved table, every row
    with its final outcome.
apply: that resolved table -> warehouse changes, inside the caller's transaction.

Validated and resolved rows live in DuckDB temp tables on the upload's connection, not in polars:
a 10M-row file then never sits whole in Python memory, and resolve/apply are SQL over a table.
The caller names both tables (scratch handles) and drops them whatever becomes of the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import polars as pl

from segpipe.ingest import normalize
from segpipe.ingest.errors import UploadRejected
from segpipe.ingest.filenames import UploadKind
from segpipe.ingest.reader import LINE
from segpipe.ingest.validate import OUTCOME, REASON
from segpipe.kinds import columns
from segpipe.vocabulary import RowOutcome
from segpipe.warehouse.scratch import scratch
from segpipe.warehouse.sql import frame
from segpipe.warehouse.uploads import UploadContext


@dataclass(frozen=True)
class BatchRules:
    """How a kind resolves and applies the rows of many small files at once (segpipe/batch.py).
    The rows carry BATCH_FILE, the file's position in the batch; the warehouse must end exactly
    as if each file had been applied in turn, each change recorded under its own upload."""

    # (con, validated table, resolved table to create); consumes the validated table.
    resolve: Callable[[duckdb.DuckDBPyConnection, str, str], None]
    # (con, resolved table, the batch's uploads in BATCH_FILE order), inside one transaction.
    apply: Callable[[duckdb.DuckDBPyConnection, str, Sequence[UploadContext]], None]
    # (con, resolved table) -> the first file that creates something a later file could name
    # (the batch ends with it: the later files are resolved again after it), or None.
    first_creating: Callable[[duckdb.DuckDBPyConnection, str], int | None]


@dataclass(frozen=True)
class KindRules:
    kind: UploadKind
    header: bool
    validate: Callable[[str, pl.DataFrame], pl.DataFrame]
    # (con, validated table, resolved table to create, upload); consumes the validated table.
    resolve: Callable[[duckdb.DuckDBPyConnection, str, str, UploadContext], None]
    apply: Callable[[duckdb.DuckDBPyConnection, str, UploadContext], None]
    columns: int | None = None
    # True when validate judges each row on its own (nothing across rows), so a big file can be
    # read and validated a slice at a time with the same result.
    row_by_row: bool = False
    # True for a delivery that replaces its segments whole and is named by its file (Attentive:
    # domain, date, part): the removal guard holds it, and its name is part of what makes it a
    # repeat (SPEC 3).
    full_replace: bool = False
    # Set for kinds whose small files may be resolved and applied many at a time.
    batch: BatchRules | None = None


def require_columns(
    file_name: str, frame: pl.DataFrame, *alternatives: Sequence[str], rows_in: int = 0
) -> None:
    """Each argument is a set of alternatives of which the header must carry at least one."""
    for choice in alternatives:
        if not any(name in frame.columns for name in choice):
            wanted = choice[0] if len(choice) == 1 else "one of " + ", ".join(choice)
            raise UploadRejected(
                file_name, f"missing required column: {wanted}", rows_in=frame.height
            )


def column_or_null(frame: pl.DataFrame, name: str) -> pl.Expr:
    """The column if the file has it, else nulls, so rules read the same either way."""
    return pl.col(name) if name in frame.columns else pl.lit(None, pl.String).alias(name)


# The identifiers that name a person in every kind but the subscriber one, in the order a row's
# first non-empty one is used (SPEC section 2; Luminate's Standard Constituent Import order).
PERSON_IDENTIFIERS = ("cons_id", "member_id", "email")
NAMES_PERSON = "names_person"


def person_identifiers(raw: pl.DataFrame, extra: Sequence[str] = ()) -> list[pl.Expr]:
    """`cons_id` (text, cast by `person_id_types`), `member_id` (text, exactly as received), any
    `extra` identifier columns, then the normalized `email`: each only where every earlier one is
    empty, so a row is matched by its first identifier alone (SPEC section 2)."""
    *ids, email_column = _in_order(extra)
    exprs, earlier = [], pl.lit(True)
    for name in ids:
        value = column_or_null(raw, name)
        exprs.append(pl.when(earlier).then(value).alias(name))
        earlier = earlier & value.is_null()
    email = normalize.email(column_or_null(raw, email_column))
    exprs.append(pl.when(earlier).then(email).alias(email_column))
    return exprs


def _in_order(extra: Sequence[str]) -> list[str]:
    """PERSON_IDENTIFIERS with a kind's `extra` identifiers before the email."""
    *ids, email = PERSON_IDENTIFIERS
    return [*ids, *extra, email]


def names_person(extra: Sequence[str] = ()) -> pl.Expr:
    """The one "names a person" predicate: True when the row carries any identifier
    (`person_identifiers` columns, `extra` included), as the column NAMES_PERSON."""
    return pl.any_horizontal(pl.col(_in_order(extra)).is_not_null()).alias(NAMES_PERSON)


def person_schema_columns(extra: Sequence[str] = ()) -> dict:
    """The pandera columns that check a row's identifiers, with the reasons a person reads."""
    listed = ", ".join(_in_order(extra))
    return {
        "cons_id": columns.whole_number("cons_id"),
        "email": columns.email(),
        NAMES_PERSON: columns.holds(f"row names no person: {listed} are empty"),
    }


def person_id_types() -> pl.Expr:
    """cons_id as the BIGINT it is in the warehouse (validated rows only; others become null)."""
    return pl.col("cons_id").cast(pl.Int64, strict=False)


def identifiers_used(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The PERSON_IDENTIFIERS some row of `table` fills: a lookup by an identifier no row carries
    is left out (on the 10M-row bench upload, no cons_id: one join of 5M people less)."""
    counts = con.execute(
        f"SELECT {', '.join(f'count({name})' for name in PERSON_IDENTIFIERS)} FROM {table}"
    ).fetchall()[0]
    return {name for name, count in zip(PERSON_IDENTIFIERS, counts, strict=True) if count}


def person_lookup(
    people_by_email: str = "constituents",
    people_by_member: str = "constituents",
    row: str = "v",
    used: set[str] | frozenset[str] = frozenset(PERSON_IDENTIFIERS),
) -> tuple[str, str, str]:
    """SQL joins from the rows `row` (columns of `person_identifiers`) to the constituent they
    name, the expression of that person's `cons_id` (NULL: nobody), and the reason a row naming
    nobody is refused. `people_by_email` has columns `cons_id, email` (one row an email),
    `people_by_member` `cons_id, member_id` (both may be constituents itself); identifiers not
    in `used` are not looked up."""
    sources = {
        "cons_id": ("constituents", "by_cons"),
        "member_id": (people_by_member, "by_member"),
        "email": (people_by_email, "by_email"),
    }
    looked_up = [name for name in PERSON_IDENTIFIERS if name in used]
    joins = "".join(
        f"\n    LEFT JOIN {sources[name][0]} {sources[name][1]} "
        f"ON {sources[name][1]}.{name} = {row}.{name}"
        for name in looked_up
    )
    found = [f"{sources[name][1]}.cons_id" for name in looked_up]
    resolved = f"coalesce({', '.join(found)})" if found else "NULL::BIGINT"
    return joins, resolved, not_found_reason(row)


def not_found(identifier: str, value: str | None = None) -> str:
    """SQL text of the one "constituent not found" reason: by `identifier` (`cons_id`,
    `member_id`, `external_id`) and the SQL expression `value` of what the row gave, or, for an
    email (never echoed: masking), no value."""
    if value is None:
        return f"'constituent not found: no one has that {identifier}'"
    return f"'constituent not found: no {identifier} ' || {value}"


def not_found_reason(row: str = "v") -> str:
    """Why the row `row` (columns of `person_identifiers`) names nobody: its first identifier."""
    return f"""CASE
        WHEN {row}.cons_id IS NOT NULL THEN {not_found("cons_id", f"{row}.cons_id")}
        WHEN {row}.member_id IS NOT NULL THEN {not_found("member_id", f"{row}.member_id")}
        ELSE {not_found("email")} END"""


def supersede_earlier_rows(con: duckdb.DuckDBPyConnection, table: str, key: Sequence[str]) -> None:
    """Among the accepted rows of `table` that share `key` (SQL expressions over its columns;
    NULLs equal), the one on the latest line wins and the others become superseded.

    One GROUP BY over the key finds the keys that repeat, and an UPDATE marks only their earlier
    rows. A window over every row (max(line) OVER the key) would carry every column of the
    upload through a partition: on the 10M-row bench upload this step takes 4.7 s where the
    window added 8.5 s to the resolve."""
    keys = [f"{expression} AS _key{i}" for i, expression in enumerate(key)]
    same_key = " AND ".join(
        f"({expression}) IS NOT DISTINCT FROM repeated._key{i}" for i, expression in enumerate(key)
    )
    con.execute(
        f"""
        UPDATE {table} SET {OUTCOME} = '{RowOutcome.SUPERSEDED}',
            {REASON} = 'superseded by line ' || repeated.winning_line
        FROM (
            SELECT {", ".join(f"_key{i}" for i in range(len(key)))},
                   max({LINE}) AS winning_line
            FROM (SELECT {", ".join(keys)}, {LINE} FROM {table} WHERE {OUTCOME} IS NULL)
            GROUP BY ALL
            HAVING count(*) > 1
        ) AS repeated
        WHERE {table}.{OUTCOME} IS NULL AND {same_key}
          AND {table}.{LINE} <> repeated.winning_line
        """
    )


def resolve_accepted(
    con: duckdb.DuckDBPyConnection,
    validated: str,
    resolved: str,
    query: Callable[[str], str],
    params: list | dict | None = None,
) -> None:
    """Create the table `resolved`: the result of `query(accepted)`, SQL that reads the accepted
    rows of the table `validated` from the view named `accepted`, with the rows validation
    already refused beside it (their internal columns only: `_line`, `_outcome`, `_reason`, a
    batch's `_file`; what their reports read).

    The validated table is dropped once read: on a 10M-row upload it is ~0.9 GB, and keeping
    it while later steps work on the resolved table made DuckDB spill both to disk. For the
    same reason a query may leave out columns no later step reads (README, "Design
    measurements")."""
    with scratch(con, "accepted", view=True) as accepted:
        con.execute(
            f"CREATE TEMP VIEW {accepted} AS SELECT * FROM {validated} WHERE {OUTCOME} IS NULL"
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {resolved} AS
            SELECT COLUMNS('^_') FROM {validated} WHERE {OUTCOME} IS NOT NULL
            UNION ALL BY NAME ({query(accepted)})
            """,
            params,
        )
    con.execute(f"DROP TABLE {validated}")


def columns_of(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    """No rows, every column of `table` with its type: what rules that look at names need."""
    return frame(con, f"SELECT * FROM {table} LIMIT 0")


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@contextmanager
def view(con: duckdb.DuckDBPyConnection, name: str, query: str) -> Iterator[str]:
    """`query` visible to SQL as the temp view `name` for the length of the block."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {query}")
    try:
        yield name
    finally:
        con.execute(f"DROP VIEW IF EXISTS {name}")


@contextmanager
def applied_rows(con: duckdb.DuckDBPyConnection, resolved: str) -> Iterator[str]:
    """The rows of `resolved` that apply, as a scratch view whose name the block gets."""
    with scratch(con, "applied_rows", view=True) as name:
        con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {resolved} WHERE {OUTCOME} IS NULL")
        yield name
