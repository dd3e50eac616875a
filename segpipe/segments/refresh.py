"""Recompute every data-driven segment of segments.yaml, in one transaction.

Rules fail alone (SPEC section 5): a segment whose rule cannot be evaluated (an unknown
attribute, a text column compared as a number) keeps its members and is reported by name in
`Refresh.failed`; every other segment still refreshes. Only a file segpipe cannot read at all
(bad YAML, a cycle, a name defined twice) fails the whole refresh.

Segments that other segments name are computed first, so a segment of segments sees its
dependencies' new members. A data-driven segment no longer in segments.yaml is deleted: its
members leave (recorded in membership_history, so destinations sync the removal) and the segment
goes; people are never deleted. Segments of other kinds are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from segpipe.segments.compile import CompiledSegment, compile_segment, load_catalog
from segpipe.segments.rules import (
    SegmentDefinition,
    SegmentDefinitionError,
    dependency_order,
    read_definitions,
)
from segpipe.vocabulary import SegmentKind
from segpipe.warehouse.scratch import scratch, scratches
from segpipe.warehouse.segments import create_missing_segments, replace_members
from segpipe.warehouse.sql import frame, transaction

KIND = SegmentKind.DATA_DRIVEN


@dataclass(frozen=True)
class Refresh:
    sizes: dict[str, int]  # segment name -> members, in evaluation order
    entered: int
    left: int
    deleted: list[str]
    failed: dict[str, str]  # segment name -> why its rule was not evaluated (it kept its members)
    notes: dict[str, list[str]]  # segment name -> how its rule was read (see CompiledSegment)


def compile_definitions(
    con: duckdb.DuckDBPyConnection, definitions: list[SegmentDefinition], as_of: datetime
) -> list[CompiledSegment]:
    """Every definition checked against the warehouse and compiled, in dependency order;
    raises the first SegmentDefinitionError."""
    compiled, failed = compile_each(con, definitions, as_of)
    if failed:
        raise next(iter(failed.values()))
    return compiled


def compile_each(
    con: duckdb.DuckDBPyConnection, definitions: list[SegmentDefinition], as_of: datetime
) -> tuple[list[CompiledSegment], dict[str, SegmentDefinitionError]]:
    """(the definitions that compile, in dependency order; the error of each that does not)."""
    catalog = load_catalog(con)
    defined = {d.name.lower() for d in definitions}
    compiled, failed = [], {}
    for definition in dependency_order(definitions):
        try:
            kind = catalog.segments.get(definition.name.lower())
            if kind not in (None, KIND):
                raise SegmentDefinitionError(
                    definition.name, f"a {kind} segment of that name exists; choose another name"
                )
            compiled.append(compile_segment(con, definition, catalog, defined, as_of))
        except SegmentDefinitionError as error:
            failed[definition.name] = error
    return compiled, failed


def refresh_segments(
    con: duckdb.DuckDBPyConnection, path: Path, *, as_of: datetime, run_id: str | None, at
) -> Refresh:
    definitions = read_definitions(path)
    with transaction(con):
        compiled, failed = compile_each(con, definitions, as_of)
        # A segment whose rule failed is still defined: it keeps its members, it is not deleted.
        deleted = _delete_undefined(con, [d.name for d in definitions], run_id, at)
        _create_defined(con, compiled, at)
        sizes, entered, left = {}, 0, 0
        for segment in compiled:
            moved, size = _refresh_one(con, segment, run_id, at)
            entered, left, sizes[segment.name] = entered + moved[0], left + moved[1], size
    failures = {name: str(error) for name, error in failed.items()}
    notes = {c.name: c.notes for c in compiled if c.notes}
    return Refresh(sizes, entered, left, deleted, failures, notes)


def _create_defined(con: duckdb.DuckDBPyConnection, compiled: list[CompiledSegment], at) -> None:
    names = [c.name for c in compiled]
    with scratch(con, "defined") as defined:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {defined} AS SELECT unnest(?::VARCHAR[]) AS name",
            [names],
        )
        create_missing_segments(con, defined, KIND, at)
    for segment in compiled:  # a handful of segments: the description follows the YAML
        con.execute(
            "UPDATE segments SET description = ? WHERE lower(name) = lower(?) AND kind = ?",
            [segment.description, segment.name, KIND],
        )


def _delete_undefined(con, names: list[str], run_id, at) -> list[str]:
    gone = frame(
        con,
        "SELECT segment_id, name FROM segments WHERE kind = ? "
        "AND lower(name) NOT IN (SELECT lower(unnest(?::VARCHAR[]))) ORDER BY name",
        [KIND, names],
    )
    if gone.is_empty():
        return []
    empty = "(SELECT NULL::BIGINT AS segment_id, NULL::BIGINT AS cons_id WHERE false)"
    with scratch(con, "gone") as ids:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {ids} AS SELECT unnest(?::BIGINT[]) AS segment_id",
            [gone["segment_id"].to_list()],
        )
        replace_members(con, segments=ids, members=empty, upload_id=None, run_id=run_id, at=at)
        con.execute(f"DELETE FROM segments WHERE segment_id IN (SELECT segment_id FROM {ids})")
    return gone["name"].to_list()


def _refresh_one(con, segment: CompiledSegment, run_id, at) -> tuple[tuple[int, int], int]:
    segment_id = frame(
        con,
        "SELECT segment_id FROM segments WHERE lower(name) = lower(?) AND kind = ?",
        [segment.name, KIND],
    ).item()
    with scratches(con, "rule_members", "refreshing") as (members, refreshing):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {members} AS "
            f"SELECT DISTINCT ?::BIGINT AS segment_id, cons_id FROM ({segment.sql})",
            [segment_id, *segment.params],
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {refreshing} AS SELECT ?::BIGINT AS segment_id",
            [segment_id],
        )
        moved = replace_members(
            con,
            segments=refreshing,
            members=members,
            upload_id=None,
            run_id=run_id,
            at=at,
            exact=True,  # one segment's members, DISTINCT above
        )
        size = frame(con, f"SELECT count(*) AS n FROM {members}").item()
    return moved, size
