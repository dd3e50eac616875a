"""segments.yaml -> segment definitions (SPEC section 5), checked for shape before any SQL.

Pure: no warehouse here. What the rules name (attributes, event properties, interests, other
segments) is checked against the warehouse in `compile.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import yaml

from segpipe.safe_yaml import load_yaml
from segpipe.vocabulary import GroupMode, InterestStatus

ATTRIBUTE_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "contains", "exists", "not_exists")
VALUELESS_OPS = ("exists", "not_exists")
Scalar = str | int | float | bool | date | datetime


class SegmentDefinitionError(Exception):
    """segments.yaml asks for something segpipe cannot evaluate; the message names the segment
    and the offending condition."""

    def __init__(self, segment: str | None, problem: str, condition: object = None):
        where = f"segment '{segment}': " if segment else ""
        shown = f" in {describe(condition)}" if condition is not None else ""
        super().__init__(f"segments.yaml: {where}{problem}{shown}")
        self.segment = segment


def describe(condition: object) -> str:
    """A condition as the user wrote it, on one line."""
    if isinstance(condition, dict):
        return json.dumps(condition, default=str, ensure_ascii=False)
    return repr(condition)


@dataclass(frozen=True)
class AttributeCondition:
    attribute: str
    op: str
    value: Scalar | tuple[Scalar, ...] | None
    source: dict


@dataclass(frozen=True)
class EventCondition:
    event: str
    min_count: int  # 0 when only max_count is given: "at most N", max_count 0 = never
    max_count: int | None
    within_days: float | None
    where: tuple[tuple[str, tuple[str, ...]], ...]  # property -> accepted values
    same: str | None  # count per value of this property (the same offer, the same url)
    without: str | None  # ... leaving out values the person has this other event for
    source: dict


@dataclass(frozen=True)
class InterestCondition:
    interest: str
    status: str
    source: dict


@dataclass(frozen=True)
class SegmentCondition:
    segment: str
    member: bool
    source: dict


@dataclass(frozen=True)
class Group:
    mode: GroupMode
    conditions: tuple[Condition, ...]


Condition = AttributeCondition | EventCondition | InterestCondition | SegmentCondition | Group


@dataclass(frozen=True)
class SegmentDefinition:
    name: str
    description: str | None
    rule: Group

    def conditions(self, group: Group | None = None):
        """Every leaf condition, depth first."""
        for condition in (group or self.rule).conditions:
            if isinstance(condition, Group):
                yield from self.conditions(condition)
            else:
                yield condition

    def segments_named(self) -> set[str]:
        return {c.segment.lower() for c in self.conditions() if isinstance(c, SegmentCondition)}


def read_definitions(path: Path) -> list[SegmentDefinition]:
    """The segments of a segments.yaml; no file means no data-driven segments."""
    if not path.exists():
        return []
    return parse_definitions(path.read_text(encoding="utf-8"))


def parse_definitions(text: str) -> list[SegmentDefinition]:
    try:
        document = load_yaml(text) or {}
    except yaml.YAMLError as error:
        raise SegmentDefinitionError(None, f"not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise SegmentDefinitionError(None, "the file must be a mapping with a 'segments' list")
    entries = document.get("segments") or []
    if not isinstance(entries, list):
        raise SegmentDefinitionError(None, "'segments' must be a list")
    definitions = [_segment(entry, position) for position, entry in enumerate(entries, 1)]
    seen: set[str] = set()
    for definition in definitions:
        if definition.name.lower() in seen:
            raise SegmentDefinitionError(definition.name, "defined twice")
        seen.add(definition.name.lower())
    return definitions


def _segment(entry: object, position: int) -> SegmentDefinition:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise SegmentDefinitionError(None, f"segment #{position} has no name", entry)
    name = entry["name"].strip()
    if not name:
        raise SegmentDefinitionError(None, f"segment #{position} has an empty name", entry)
    modes = [mode for mode in GroupMode if mode in entry]
    unknown = set(entry) - {"name", "description", *GroupMode}
    if unknown:
        raise SegmentDefinitionError(name, f"unknown key(s) {', '.join(sorted(unknown))}")
    if len(modes) != 1:
        raise SegmentDefinitionError(name, "needs exactly one of 'all' or 'any'")
    return SegmentDefinition(name, entry.get("description"), _group(name, modes[0], entry))


def _group(segment: str, mode: GroupMode, entry: dict) -> Group:
    items = entry[mode]
    if not isinstance(items, list) or not items:
        raise SegmentDefinitionError(segment, f"'{mode}' must be a non-empty list", entry)
    return Group(mode, tuple(_condition(segment, item) for item in items))


def _condition(segment: str, item: object) -> Condition:
    if not isinstance(item, dict):
        raise SegmentDefinitionError(segment, "a condition must be a mapping", item)
    for mode in GroupMode:
        if mode in item:
            if len(item) != 1:
                raise SegmentDefinitionError(segment, f"'{mode}' stands alone in a group", item)
            return _group(segment, mode, item)
    kinds = [key for key in ("attribute", "event", "interest", "segment") if key in item]
    if len(kinds) != 1:
        raise SegmentDefinitionError(
            segment,
            "a condition names exactly one of attribute, event, interest, segment (or all/any)",
            item,
        )
    return _READERS[kinds[0]](segment, item)


def _only(segment: str, item: dict, allowed: set[str]) -> None:
    unknown = set(item) - allowed
    if unknown:
        raise SegmentDefinitionError(segment, f"unknown key(s) {', '.join(sorted(unknown))}", item)


def _text(segment: str, item: dict, key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SegmentDefinitionError(segment, f"'{key}' must be a non-empty name", item)
    return value.strip()


def _attribute(segment: str, item: dict) -> AttributeCondition:
    _only(segment, item, {"attribute", "op", "value"})
    op = item.get("op")
    if op not in ATTRIBUTE_OPS:
        raise SegmentDefinitionError(segment, f"op must be one of {', '.join(ATTRIBUTE_OPS)}", item)
    value = item.get("value")
    if op in VALUELESS_OPS:
        if "value" in item:
            raise SegmentDefinitionError(segment, f"op {op} takes no value", item)
    elif op == "in":
        if not isinstance(value, list) or not value or any(_not_scalar(v) for v in value):
            raise SegmentDefinitionError(segment, "op in needs a non-empty list of values", item)
        value = tuple(value)
    elif _not_scalar(value):
        raise SegmentDefinitionError(segment, f"op {op} needs a single value", item)
    if op == "contains" and not isinstance(value, str):
        raise SegmentDefinitionError(segment, "op contains needs a text value", item)
    return AttributeCondition(_text(segment, item, "attribute"), op, value, item)


def _not_scalar(value: object) -> bool:
    return value is None or not isinstance(value, Scalar)


def _count(segment: str, item: dict, key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SegmentDefinitionError(segment, f"{key} must be a whole number, 0 or more", item)
    return value


def _property_text(value: Scalar) -> str:
    """Properties are stored as the text of the file; YAML's true/42 mean "true"/"42"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _event(segment: str, item: dict) -> EventCondition:
    _only(
        segment,
        item,
        {"event", "min_count", "max_count", "within_days", "where", "same", "without"},
    )
    low, high = _count(segment, item, "min_count"), _count(segment, item, "max_count")
    if low is None:
        low = 0 if high is not None else 1
    if high is not None and low > high:
        raise SegmentDefinitionError(segment, "min_count is above max_count", item)
    days = item.get("within_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int | float)):
        raise SegmentDefinitionError(segment, "within_days must be a number of days", item)
    if days is not None and days <= 0:
        raise SegmentDefinitionError(segment, "within_days must be above 0", item)
    where = item.get("where") or {}
    if not isinstance(where, dict):
        raise SegmentDefinitionError(segment, "'where' maps property names to values", item)
    filters = []
    for prop, wanted in where.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or any(_not_scalar(v) for v in values):
            raise SegmentDefinitionError(
                segment, f"where {prop} needs a value or a list of values", item
            )
        filters.append((str(prop), tuple(_property_text(v) for v in values)))
    same = _text(segment, item, "same") if "same" in item else None
    without = _text(segment, item, "without") if "without" in item else None
    if without and not same:
        raise SegmentDefinitionError(segment, "'without' needs 'same' (the shared property)", item)
    if same and low < 1:
        raise SegmentDefinitionError(segment, "'same' needs min_count of 1 or more", item)
    return EventCondition(
        _text(segment, item, "event"), low, high, days, tuple(filters), same, without, item
    )


def _interest(segment: str, item: dict) -> InterestCondition:
    _only(segment, item, {"interest", "status"})
    status = item.get("status", InterestStatus.OPTED_IN.value)
    if status not in InterestStatus.__members__.values():
        raise SegmentDefinitionError(segment, "status must be opted_in or opted_out", item)
    return InterestCondition(_text(segment, item, "interest"), status, item)


def _segment_condition(segment: str, item: dict) -> SegmentCondition:
    _only(segment, item, {"segment", "member"})
    member = item.get("member", True)
    if not isinstance(member, bool):
        raise SegmentDefinitionError(segment, "member must be true or false", item)
    return SegmentCondition(_text(segment, item, "segment"), member, item)


_READERS = {
    "attribute": _attribute,
    "event": _event,
    "interest": _interest,
    "segment": _segment_condition,
}


def dependency_order(definitions: list[SegmentDefinition]) -> list[SegmentDefinition]:
    """Segments that others name come first; a cycle is an error naming its segments."""
    by_name = {d.name.lower(): d for d in definitions}
    ordered: list[SegmentDefinition] = []
    state: dict[str, str] = {}

    def visit(definition: SegmentDefinition, path: list[str]) -> None:
        key = definition.name.lower()
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            cycle = path[path.index(definition.name) :] + [definition.name]
            raise SegmentDefinitionError(
                definition.name, "segment conditions form a cycle: " + " -> ".join(cycle)
            )
        state[key] = "visiting"
        for name in sorted(definition.segments_named()):
            if name in by_name:
                visit(by_name[name], [*path, definition.name])
        state[key] = "done"
        ordered.append(definition)

    for definition in definitions:
        visit(definition, [])
    return ordered
