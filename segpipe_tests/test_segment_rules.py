"""segments.yaml mistakes fail at load, naming the segment and the condition (no Dagster here:
the rules are checked against a real, small DuckDB warehouse)."""

from __future__ import annotations

from datetime import datetime

import pytest

from segpipe.segments.compile import compile_segment, load_catalog
from segpipe.segments.refresh import compile_definitions
from segpipe.segments.rules import SegmentDefinitionError, dependency_order, parse_definitions
from segpipe.warehouse.connection import connect

AS_OF = datetime(2026, 11, 7)


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    with connect(tmp_path_factory.mktemp("rules") / "warehouse.duckdb") as con:
        con.execute('ALTER TABLE constituents ADD COLUMN "lifetime_value" DOUBLE')
        con.execute(
            "INSERT INTO interests VALUES (1, 'Newsletter', 'Uploaded', 'email', NULL, NULL)"
        )
        con.execute(
            "INSERT INTO segments (segment_id, name, kind, description, created_at) "
            "VALUES (7, 'VIP list', 'manual', NULL, NULL)"
        )
        con.execute("INSERT INTO event_properties VALUES ('viewed_offer', 'offer_id')")
        yield con


def _load(con, text: str):
    return compile_definitions(con, parse_definitions(text), AS_OF)


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ("{attribute: lifetme_value, op: gt, value: 1}", "unknown attribute 'lifetme_value'"),
        (
            "{event: viewed_offer, where: {offer: gold}}",
            "unknown property 'offer' of event 'viewed_offer'",
        ),
        (
            "{event: purchased, where: {offer_id: gold}}",
            "unknown property 'offer_id' of event 'purchased'",
        ),
        (
            "{event: viewed_offer, same: offer_id, without: purchased}",
            "unknown property 'offer_id' of event 'purchased'",
        ),
        ("{segment: VIP lst}", "unknown segment 'VIP lst'"),
        ("{attribute: lifetime_value, op: gt, value: lots}", "value 'lots' is not a DOUBLE"),
        ("{attribute: lifetime_value, op: contains, value: '1'}", "needs a text attribute"),
        ("{attribute: lifetime_value, op: between, value: 1}", "op must be one of"),
        ("{attribute: lifetime_value, op: in, value: 5}", "op in needs a non-empty list"),
        ("{event: viewed_offer, min_count: 3, max_count: 1}", "min_count is above max_count"),
        ("{event: viewed_offer, within_days: -1}", "within_days must be above 0"),
        ("{interest: Newsletter, status: maybe}", "status must be opted_in or opted_out"),
        ("{event: viewed_offer, colour: red}", "unknown key(s) colour"),
    ],
)
def test_a_bad_condition_fails_at_load_naming_segment_and_condition(con, condition, problem):
    with pytest.raises(SegmentDefinitionError) as raised:
        _load(con, f"segments:\n  - name: Donors\n    all:\n      - {condition}\n")
    message = str(raised.value)
    assert "segment 'Donors'" in message
    assert problem in message
    assert raised.value.segment == "Donors"


def test_known_names_load_whatever_their_case(con):
    compiled = _load(
        con,
        """
segments:
  - name: Donors
    all:
      - {interest: NEWSLETTER}
      - {segment: vip LIST, member: false}
      - {event: viewed_offer, where: {offer_id: gold}}
      - {event: never_seen_yet, max_count: 0}
""",
    )
    assert [c.name for c in compiled] == ["Donors"]


def test_segment_conditions_order_evaluation_and_cycles_fail():
    definitions = parse_definitions(
        """
segments:
  - {name: C, all: [{segment: B}]}
  - {name: B, all: [{segment: A}]}
  - {name: A, all: [{attribute: x, op: exists}]}
"""
    )
    assert [d.name for d in dependency_order(definitions)] == ["A", "B", "C"]
    cyclic = parse_definitions(
        """
segments:
  - {name: A, all: [{segment: B}]}
  - {name: B, any: [{attribute: x, op: exists}, {segment: a}]}
"""
    )
    with pytest.raises(SegmentDefinitionError, match="cycle: A -> B -> A"):
        dependency_order(cyclic)


def test_a_yaml_segment_cannot_take_the_name_of_a_manual_one(con):
    with pytest.raises(SegmentDefinitionError, match="a manual segment of that name exists"):
        _load(con, "segments:\n  - {name: vip list, all: [{attribute: email, op: exists}]}\n")


def test_values_are_parameters_never_sql_text(con):
    hostile = "x' OR 1=1 --"
    [definition] = parse_definitions(
        "segments:\n  - name: S\n    all:\n"
        f'      - {{attribute: email, op: eq, value: "{hostile}"}}\n'
        f'      - {{event: viewed_offer, where: {{offer_id: "{hostile}"}}}}\n'
        f"      - {{interest: Newsletter}}\n"
    )
    compiled = compile_segment(con, definition, load_catalog(con), {"s"}, AS_OF)
    assert hostile not in compiled.sql and "Newsletter" not in compiled.sql
    assert compiled.sql.count("?") == len(compiled.params)
    assert hostile in compiled.params and ["x' OR 1=1 --"] in compiled.params


def test_duplicate_names_and_bad_yaml_are_errors():
    with pytest.raises(SegmentDefinitionError, match="segment 'a': defined twice"):
        parse_definitions(
            "segments:\n  - {name: A, all: [{attribute: x, op: exists}]}\n"
            "  - {name: a, all: [{attribute: x, op: exists}]}\n"
        )
    with pytest.raises(SegmentDefinitionError, match="not valid YAML"):
        parse_definitions("segments: [\n")
    with pytest.raises(SegmentDefinitionError, match="needs exactly one of 'all' or 'any'"):
        parse_definitions("segments:\n  - {name: A}\n")


def test_an_interest_nobody_created_yet_matches_nobody_with_a_note(con):
    (compiled,) = _load(con, "segments:\n  - name: Gardeners\n    all: [{interest: Gardening}]\n")
    assert con.execute(compiled.sql, compiled.params).fetchall() == []
    assert compiled.notes == [
        "interest 'Gardening' does not exist yet: "
        "{interest: Gardening, status: opted_in} matches nobody"
    ]


def test_a_text_attribute_compared_as_a_number_or_date_fails_saying_how_to_declare_it(con):
    con.execute('ALTER TABLE constituents ADD COLUMN IF NOT EXISTS "given" VARCHAR')
    for value, kind in (("25000", "number"), ("2010-01-01", "date"), ("[1, 2]", "number")):
        op = "in" if value.startswith("[") else "gt"
        with pytest.raises(SegmentDefinitionError) as raised:
            _load(
                con,
                f"segments:\n  - name: Donors\n    all: [{{attribute: given, op: {op}, "
                f"value: {value}}}]\n",
            )
        assert f"attribute 'given' holds text (VARCHAR), so it cannot be compared as a {kind}" in (
            str(raised.value)
        )
        assert f"attributes: {{given: {kind}}}" in str(raised.value)
    # a quoted value compares as text, as the message says
    (compiled,) = _load(
        con, "segments:\n  - name: Donors\n    all: [{attribute: given, op: eq, value: '7'}]\n"
    )
    assert compiled.params == ["7"]
