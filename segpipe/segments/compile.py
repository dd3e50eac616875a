"""Segment definitions -> one parameterized DuckDB query per segment, returning cons_ids.

Every value a rule carries travels as a query parameter; the only text spliced into SQL is a
constituents column name, quoted, and only after it was found among the table's columns. Each
condition is a set-based test of `c.cons_id` (a semi or anti join on a grouped subquery), so a
segment over millions of people and events is a handful of hash joins, not per-person work.

A rule is checked against the warehouse before anything runs (`Catalog`): an unknown attribute,
event property or segment, or a number or date compared with a text column, fails with the
segment's name and the condition (SPEC section 5); an interest no upload created yet matches
nobody, with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb

from segpipe.segments.rules import (
    AttributeCondition,
    Condition,
    EventCondition,
    Group,
    InterestCondition,
    SegmentCondition,
    SegmentDefinition,
    SegmentDefinitionError,
)
from segpipe.vocabulary import GroupMode, SegmentKind
from segpipe.warehouse.catalog import constituent_columns
from segpipe.warehouse.segments import members_of
from segpipe.warehouse.sql import frame, quote

COMPARISONS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True)
class Catalog:
    """What rules may name, as the warehouse has it now (names lower-cased where matching
    ignores case)."""

    attributes: dict[str, str]  # constituents column -> SQL type
    event_properties: dict[str, set[str]]  # event -> properties it has carried
    interests: set[str]
    segments: dict[str, str]  # lower(name) -> kind


def load_catalog(con: duckdb.DuckDBPyConnection) -> Catalog:
    properties: dict[str, set[str]] = {}
    for event, prop in frame(con, "SELECT event, property FROM event_properties").iter_rows():
        properties.setdefault(event, set()).add(prop)
    interests = frame(con, "SELECT lower(name) AS name FROM interests")["name"].to_list()
    segments = frame(con, "SELECT lower(name) AS name, kind FROM segments")
    return Catalog(
        attributes=constituent_columns(con),
        event_properties=properties,
        interests=set(interests),
        segments=dict(segments.iter_rows()),
    )


@dataclass(frozen=True)
class Sql:
    """A piece of SQL and the parameters of its `?` marks, in text order."""

    text: str
    params: list

    @staticmethod
    def join(separator: str, parts: list[Sql]) -> Sql:
        return Sql(separator.join(p.text for p in parts), [v for p in parts for v in p.params])


@dataclass(frozen=True)
class CompiledSegment:
    name: str
    description: str | None
    sql: str
    params: list
    # What a user should know about how the rule was read ("interest 'Gardening' does not
    # exist yet: that condition matches nobody"); shown in the segment's metadata.
    notes: list[str] = field(default_factory=list)


def compile_segment(
    con: duckdb.DuckDBPyConnection,
    definition: SegmentDefinition,
    catalog: Catalog,
    defined: set[str],
    as_of: datetime,
) -> CompiledSegment:
    """`defined`: lower-cased names of every segment in segments.yaml (they may name each other).
    `con` only checks that attribute values fit their column's type; nothing is read."""
    compiler = _Compiler(con, definition, catalog, defined, as_of)
    where = compiler.condition(definition.rule)
    sql = f"SELECT c.cons_id FROM constituents c WHERE {where}"
    return CompiledSegment(
        definition.name, definition.description, sql, compiler.params, compiler.notes
    )


class _Compiler:
    def __init__(self, con, definition, catalog: Catalog, defined: set[str], as_of: datetime):
        self.con = con
        self.definition, self.catalog, self.defined, self.as_of = (
            definition,
            catalog,
            defined,
            as_of,
        )
        self.params: list = []
        self.notes: list[str] = []

    def fail(self, problem: str, condition) -> SegmentDefinitionError:
        return SegmentDefinitionError(self.definition.name, problem, condition.source)

    def bind(self, *values) -> None:
        self.params.extend(values)

    def condition(self, condition: Condition) -> str:
        if isinstance(condition, Group):
            joiner = " AND " if condition.mode == GroupMode.ALL else " OR "
            return "(" + joiner.join(self.condition(c) for c in condition.conditions) + ")"
        if isinstance(condition, AttributeCondition):
            return self.attribute(condition)
        if isinstance(condition, EventCondition):
            return self.event(condition)
        if isinstance(condition, InterestCondition):
            return self.interest(condition)
        return self.segment(condition)

    def attribute(self, condition: AttributeCondition) -> str:
        sql_type = self.catalog.attributes.get(condition.attribute)
        if sql_type is None:
            raise self.fail(f"unknown attribute '{condition.attribute}'", condition)
        column, op = f"c.{quote(condition.attribute)}", condition.op
        if op == "exists":
            return f"({column} IS NOT NULL)"
        if op == "not_exists":
            return f"({column} IS NULL)"
        if op == "contains":
            if sql_type != "VARCHAR":
                raise self.fail(f"op contains needs a text attribute, not {sql_type}", condition)
            self.bind(condition.value)
            return f"contains({column}, ?)"
        # The value is cast to the column's type, so numbers compare as numbers, dates as dates.
        self._refuse_text_comparison(condition, sql_type)
        self._check_fits(condition, sql_type)
        if op == "in":
            self.bind(list(condition.value))
            return f"list_contains(CAST(? AS {sql_type}[]), {column})"
        self.bind(condition.value)
        if op == "neq":  # someone with no value also differs from the value
            return f"({column} IS DISTINCT FROM CAST(? AS {sql_type}))"
        return f"({column} {COMPARISONS[op]} CAST(? AS {sql_type}))"

    def _refuse_text_comparison(self, condition: AttributeCondition, sql_type: str) -> None:
        """A number or a date compared with a text column would compare as text ('980.50' >
        '25000'): the rule fails instead, saying how to type the column."""
        if sql_type != "VARCHAR":
            return
        values = condition.value if condition.op == "in" else (condition.value,)
        as_type = next((kind for v in values if (kind := _value_kind(v))), None)
        if as_type is None:
            return
        name = condition.attribute
        raise self.fail(
            f"attribute '{name}' holds text (VARCHAR), so it cannot be compared as a {as_type}; "
            f"declare its type in segments.yaml (attributes: {{{name}: {as_type}}}) and upload "
            "it again, or quote the value to compare it as text",
            condition,
        )

    def _check_fits(self, condition: AttributeCondition, sql_type: str) -> None:
        values = condition.value if condition.op == "in" else (condition.value,)
        for value in values:
            try:
                self.con.execute(f"SELECT CAST(? AS {sql_type})", [value]).fetchall()
            except duckdb.Error:
                raise self.fail(
                    f"value {value!r} is not a {sql_type} like attribute '{condition.attribute}'",
                    condition,
                ) from None

    def _known_property(self, event: str, prop: str, condition: EventCondition) -> None:
        if prop not in self.catalog.event_properties.get(event, set()):
            raise self.fail(
                f"unknown property '{prop}' of event '{event}' (no uploaded {event} event "
                "carries it)",
                condition,
            )

    def _event_rows(self, alias: str, event: str, condition: EventCondition) -> Sql:
        """Rows of `events` for `event` inside the condition's window, up to the as-of time
        (later events are ignored, so an --as-of run gives the answer it would have had then)."""
        tests = [Sql(f"{alias}.event = ?", [event]), Sql(f'{alias}."timestamp" <= ?', [self.as_of])]
        if condition.within_days is not None:
            start = self.as_of - timedelta(days=condition.within_days)
            tests.append(Sql(f'{alias}."timestamp" > ?', [start]))
        return Sql.join(" AND ", tests)

    def event(self, condition: EventCondition) -> str:
        for prop, _ in condition.where:
            self._known_property(condition.event, prop, condition)
        if condition.same:
            self._known_property(condition.event, condition.same, condition)
        if condition.without:
            self._known_property(condition.without, condition.same, condition)
        tests = [self._event_rows("e", condition.event, condition)]
        for prop, values in condition.where:
            tests.append(
                Sql("list_contains(CAST(? AS VARCHAR[]), e.properties[?])", [list(values), prop])
            )
        group = Sql("e.cons_id", [])
        if condition.same:
            tests.append(Sql("e.properties[?] IS NOT NULL", [condition.same]))
            group = Sql("e.cons_id, e.properties[?]", [condition.same])
        if condition.without:
            bought = self._event_rows("b", condition.without, condition)
            tests.append(
                Sql(
                    "NOT EXISTS (SELECT 1 FROM events b WHERE b.cons_id = e.cons_id AND "
                    f"{bought.text} AND b.properties[?] = e.properties[?])",
                    [*bought.params, condition.same, condition.same],
                )
            )
        where = Sql.join(" AND ", tests)
        if condition.min_count >= 1:
            having = Sql("count(*) >= ?", [condition.min_count])
            if condition.max_count is not None:
                having = Sql.join(" AND ", [having, Sql("count(*) <= ?", [condition.max_count])])
            test = "IN"
        else:  # at most N times (0 = never): everyone but those who did it more often
            having, test = Sql("count(*) > ?", [condition.max_count]), "NOT IN"
        self.bind(*where.params, *group.params, *having.params)
        return (
            f"c.cons_id {test} (SELECT e.cons_id FROM events e WHERE {where.text} "
            f"GROUP BY {group.text} HAVING {having.text})"
        )

    def interest(self, condition: InterestCondition) -> str:
        if condition.interest.lower() not in self.catalog.interests:
            # No upload has created it yet (an upload naming it creates it): nobody is in it.
            self.notes.append(
                f"interest '{condition.interest}' does not exist yet: "
                f"{{interest: {condition.interest}, status: {condition.status}}} matches nobody"
            )
            return "FALSE"
        self.bind(condition.interest, condition.status)
        return (
            "c.cons_id IN (SELECT m.cons_id FROM interest_memberships m "
            "JOIN interests i ON i.interest_id = m.interest_id "
            "WHERE lower(i.name) = lower(?) AND m.status = ?)"
        )

    def segment(self, condition: SegmentCondition) -> str:
        name = condition.segment.lower()
        kind = self.catalog.segments.get(name)
        if name not in self.defined and (kind is None or kind == SegmentKind.DATA_DRIVEN):
            raise self.fail(f"unknown segment '{condition.segment}'", condition)
        members = members_of("(SELECT segment_id FROM segments WHERE lower(name) = lower(?))")
        self.bind(*[condition.segment] * members.count("?"))  # the name, at each of its uses
        negation = "" if condition.member else "NOT "
        return f"c.cons_id {negation}IN (SELECT cons_id FROM ({members}))"


def _value_kind(value: object) -> str | None:
    """'number' or 'date' for a YAML value that compares as one (true/false do not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, date):  # datetime is a date too
        return "date"
    return None
