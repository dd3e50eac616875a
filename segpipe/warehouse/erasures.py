"""Erased people in the warehouse: who they were (as salted hashes only) and their removal.

`erase_people` deletes a person from every table that refers to them, history included, and
keeps a salted SHA-256 of each identifier they had in `erasures`, so that a later upload naming
them is ignored instead of re-creating them (Segment's and RudderStack's "suppress with delete":
a deleted user never comes back). `compact` then rewrites the database file, because a deleted
row's bytes stay in DuckDB's free blocks and WAL until they are overwritten.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from segpipe.vocabulary import RowOutcome
from segpipe.warehouse import before_images
from segpipe.warehouse.connection import SETTINGS
from segpipe.warehouse.sql import frame, registered
from segpipe.warehouse.suppressions import MATCHES, PERSON_KEY, IdentifierKind

# The reason an upload's row naming an erased person is ignored with: "erased on 2026-11-30".
ERASED_REASON = "erased on "
# The identifiers hashed into `erasures`, and the constituents column each is read from: the
# suppression kinds, and the external id a CRM knows them by.
EXTERNAL_ID = "external_id"
HASHED = {
    IdentifierKind.EMAIL: "email",
    IdentifierKind.PHONE: "phone",
    IdentifierKind.MEMBER_ID: "member_id",
    IdentifierKind.CONS_ID: PERSON_KEY,
    EXTERNAL_ID: "external_id",
}
# Tables that refer to a person by the person key; history tables included.
PERSON_TABLES = (
    "interest_memberships",
    "segment_memberships",
    "membership_history",
    "events",
    "sync_members",
    "subscriber_deliveries",
    "constituents",
)


def _value(con: duckdb.DuckDBPyConnection, query: str):
    """The first value of `query`, its result read to the end (duckdb 2 refuses the next
    statement on a connection whose last result was only partly fetched)."""
    rows = con.execute(query).fetchall()
    return rows[0][0] if rows else None


@dataclass
class ErasedPeople:
    """Who an erasure found: their person keys and every identifier they had (text)."""

    people: list[int] = field(default_factory=list)
    identifiers: dict[str, set[str]] = field(default_factory=dict)  # kind -> values
    names: set[str] = field(default_factory=set)  # first and last names, to scrub with them

    def add(self, kind: str, value) -> None:
        if value is not None and str(value).strip():
            self.identifiers.setdefault(kind, set()).add(str(value).strip())


def salt(con: duckdb.DuckDBPyConnection) -> str:
    """The deployment's erasure salt, drawn once (32 random bytes, hex)."""
    found = _value(con, "SELECT salt FROM erasure_salt LIMIT 1")
    if found is None:
        found = secrets.token_hex(32)
        con.execute("INSERT INTO erasure_salt VALUES (?)", [found])
    return found


def hash_sql(kind_sql: str, value_sql: str) -> str:
    """SQL for the salted hash of an identifier: sha256(salt || kind || ':' || value), the salt
    from `erasure_salt`. Values are the canonical text a validated upload carries (email
    lower-cased, phone E.164, ids as digits)."""
    return f"sha256((SELECT salt FROM erasure_salt LIMIT 1) || {kind_sql} || ':' || {value_sql})"


def find_people(con: duckdb.DuckDBPyConnection, kind: IdentifierKind, value: str) -> ErasedPeople:
    """Every constituent `value` (canonical text of `kind`) names, with all their identifiers.
    The value itself is always among the identifiers, even when it names nobody (it may still
    sit in archived files and reports)."""
    match = MATCHES[kind].replace("s.identifier", "?")
    people = frame(con, f"SELECT * FROM constituents c WHERE {match}", [value])
    found = ErasedPeople(people=people[PERSON_KEY].to_list())
    found.add(kind, value)
    for row in people.iter_rows(named=True):
        for hashed, column in HASHED.items():
            found.add(hashed, row.get(column))
        for name in ("first_name", "last_name"):
            if row.get(name):
                found.names.add(row[name].strip())
    return found


def erase_people(con: duckdb.DuckDBPyConnection, found: ErasedPeople, at) -> int:
    """Delete `found` from every table, keep their hashes in `erasures`; inside the caller's
    transaction. Returns the rows deleted."""
    salt(con)
    people = pl.DataFrame({"person": found.people}, schema={"person": pl.Int64})
    values = pl.DataFrame(
        [{"kind": k, "value": v} for k, vs in found.identifiers.items() for v in sorted(vs)],
        schema={"kind": pl.String, "value": pl.String},
    )
    deleted = 0
    with registered(con, "_erased_people", people), registered(con, "_erased_values", values):
        for table in PERSON_TABLES:
            deleted += con.execute(
                f"DELETE FROM {table} WHERE {PERSON_KEY} IN (SELECT person FROM _erased_people)"
            ).fetchone()[0]
        deleted += con.execute(
            "DELETE FROM sync_members WHERE key_value IN (SELECT value FROM _erased_values)"
        ).fetchone()[0]
        # `segpipe undo`'s before-images hold a person's old values, undone uploads' included.
        for table in before_images.shadows(con):
            if PERSON_KEY in before_images.KEYS[table]:
                deleted += con.execute(
                    f"DELETE FROM {before_images.shadow_of(table)} "
                    f"WHERE {PERSON_KEY} IN (SELECT person FROM _erased_people)"
                ).fetchone()[0]
        suppression_images = [
            before_images.shadow_of(t) for t in before_images.shadows(con) if t == "suppressions"
        ]
        for table in ("suppressions", "suppression_history", *suppression_images):
            deleted += con.execute(
                f"DELETE FROM {table} t USING _erased_values v "
                "WHERE t.identifier_kind = v.kind AND t.identifier = v.value"
            ).fetchone()[0]
        con.execute(
            f"""
            INSERT INTO erasures
            SELECT DISTINCT kind, {hash_sql("kind", "value")}, ? FROM _erased_values v
            WHERE NOT EXISTS (SELECT 1 FROM erasures e WHERE e.identifier_kind = v.kind
                              AND e.identifier_hash = {hash_sql("v.kind", "v.value")})
            """,
            [at],
        )
    return deleted


def compact(path: Path) -> None:
    """Rewrite the database file at `path` into a fresh one and swap it in, so that no deleted
    row survives in free blocks or the WAL (a CHECKPOINT alone reuses blocks, it does not wipe
    them). Nobody may hold the file open meanwhile (the `duckdb` pool guarantees it)."""
    fresh = path.with_name(path.name + ".compact")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(path), config=SETTINGS)
    try:
        con.execute("CHECKPOINT")
        con.execute(f"ATTACH '{fresh}' AS fresh")
        con.execute(f"COPY FROM DATABASE {_catalog(con)} TO fresh")
        con.execute("DETACH fresh")
    finally:
        con.close()
    os.replace(fresh, path)
    for stale in (path.with_name(path.name + ".wal"), fresh.with_name(fresh.name + ".wal")):
        stale.unlink(missing_ok=True)
    # Spilled intermediate results of earlier queries, if DuckDB left any.
    shutil.rmtree(path.with_name(path.name + ".tmp"), ignore_errors=True)


def _catalog(con: duckdb.DuckDBPyConnection) -> str:
    return _value(con, "SELECT current_database()")


def ignore_erased(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Mark the accepted rows of an upload's validated `table` that name an erased identifier
    (in any of its columns email, phone, member_id, cons_id, external_id) as ignored, with the
    reason "erased on <date>". Costs one lookup when nobody was ever erased."""
    from segpipe.ingest.validate import OUTCOME, REASON

    if not _value(con, "SELECT count(*) FROM erasures"):
        return
    present = set(frame(con, f"SELECT * FROM {table} LIMIT 0").columns)
    for kind in HASHED:
        if kind not in present:
            continue
        value = f"trim({table}.{kind}::VARCHAR)"
        con.execute(
            f"""
            UPDATE {table} SET {OUTCOME} = '{RowOutcome.IGNORED}',
                {REASON} = '{ERASED_REASON}' || strftime(e.erased, '%Y-%m-%d')
            FROM (SELECT identifier_hash, min("at") AS erased FROM erasures
                  WHERE identifier_kind = '{kind}' GROUP BY ALL) e
            WHERE {table}.{OUTCOME} IS NULL AND {table}.{kind} IS NOT NULL
              AND e.identifier_hash = {hash_sql(f"'{kind}'", value)}
            """
        )


def returned_people(con: duckdb.DuckDBPyConnection) -> int:
    """How many constituents carry an identifier whose hash is in `erasures` (should be 0: an
    erased person is never re-created)."""
    if not _value(con, "SELECT count(*) FROM erasures"):
        return 0
    checks = " UNION ".join(
        f"SELECT c.{PERSON_KEY} FROM constituents c JOIN erasures e "
        f"ON e.identifier_kind = '{kind}' AND e.identifier_hash = "
        + hash_sql(f"'{kind}'", f"c.{column}::VARCHAR")
        for kind, column in HASHED.items()
    )
    return _value(con, f"SELECT count(*) FROM ({checks})")
