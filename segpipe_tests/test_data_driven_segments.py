"""Data-driven segments through the real pipeline: events upload, segments.yaml, `segpipe run`.

One small deployment is shared by the module (each `segpipe run` costs seconds); every expected
membership below is worked out by hand from the files, with the run's as-of 2026-11-07 00:00 UTC.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from segpipe_tests.conftest import Deployment, csv, deployment_at

AS_OF = datetime(2026, 11, 7)

CONSTITUENTS = csv(
    "member_id,email,state,lifetime_value,first_gift_date,tier,nickname",
    "1,a@x.org,CA,100,2020-01-05,gold,Ann",
    "2,b@x.org,NY,30000,2015-06-01,silver,",
    "3,c@x.org,TX,9,2021-03-03,,Bobby",
    "4,d@x.org,CA,250.5,2010-12-31,gold,x' OR 1=1 --",
    "5,e@x.org,,,,,",
)
SEGMENTATION = csv(
    "member_id,interest_name,opt",
    "1,Newsletter,in",
    "2,Newsletter,out",
)
EVENTS = csv(
    "member_id,email,event,timestamp,offer_id,url",
    "1,,viewed_offer,2026-11-01T00:00:00Z,gold,",
    "1,,viewed_offer,2026-11-02 00:00:00,gold,",
    "1,,viewed_offer,2026-11-03T00:00:00+00:00,gold,",
    "1,,viewed_offer,2026-11-04T00:00:00Z,silver,",
    "2,,viewed_offer,2026-11-05T00:00:00Z,gold,",
    "2,,viewed_offer,2026-11-05T01:00:00Z,gold,",
    "2,,viewed_offer,2026-11-05T02:00:00Z,gold,",
    "2,,purchased,2026-11-06T00:00:00Z,gold,",
    "3,,viewed_offer,2026-10-01T00:00:00Z,gold,",  # outside every 7-day window
    "3,,viewed_offer,2026-11-06T12:00:00+02:00,gold,",  # 10:00 UTC: inside
    "3,,viewed_offer,2026-11-06T23:30:00-02:00,gold,",  # 01:30 UTC on the 7th: after as-of
    ",d@x.org,page_view,2026-11-06T00:00:00,,/donate",
    "9,,page_view,2026-11-06T00:00:00Z,,/donate",  # nobody: ignored
    "4,,page_view,6 Nov 2026,,/donate",  # not ISO 8601: rejected
    "4,,page_view,2026-11-06T00:00:00,,/donate",  # an exact repeat of line 13: superseded
)

ATTRIBUTE_SEGMENTS = {
    "eq_state": ("{attribute: state, op: eq, value: CA}", {1, 4}),
    "neq_state": ("{attribute: state, op: neq, value: CA}", {2, 3, 5}),
    # Numbers compare as numbers: as text, "250.5" and "30000" would sort below "99".
    "gt_ltv": ("{attribute: lifetime_value, op: gt, value: 99}", {1, 2, 4}),
    "gte_ltv": ("{attribute: lifetime_value, op: gte, value: 250.5}", {2, 4}),
    "lt_ltv": ("{attribute: lifetime_value, op: lt, value: 100}", {3}),
    "lte_ltv": ("{attribute: lifetime_value, op: lte, value: 100}", {1, 3}),
    "in_state": ("{attribute: state, op: in, value: [NY, TX]}", {2, 3}),
    "contains_nickname": ("{attribute: nickname, op: contains, value: ob}", {3}),
    "exists_tier": ("{attribute: tier, op: exists}", {1, 2, 4}),
    "not_exists_tier": ("{attribute: tier, op: not_exists}", {3, 5}),
    # Dates compare as dates, whether YAML reads the value as a date or as quoted text.
    "date_lt": ("{attribute: first_gift_date, op: lt, value: 2015-01-01}", {4}),
    "date_gte": ('{attribute: first_gift_date, op: gte, value: "2020-01-05"}', {1, 3}),
    # SQL in a value is data: it matches the one person whose nickname is that text.
    "injection_as_data": ('{attribute: nickname, op: eq, value: "x\' OR 1=1 --"}', {4}),
    "injection_matches_nobody": ("{attribute: state, op: eq, value: \"CA' OR '1'='1\"}", set()),
}
EVENT_SEGMENTS = {
    "viewed_gold_3_in_week": (
        "{event: viewed_offer, min_count: 3, within_days: 7, where: {offer_id: gold}}",
        {1, 2},
    ),
    # Person 3's second view is at 01:30 UTC on the 7th (after as-of) once its offset counts.
    "viewed_gold_2_in_week": (
        "{event: viewed_offer, min_count: 2, within_days: 7, where: {offer_id: [gold]}}",
        {1, 2},
    ),
    "viewed_4_any_offer": ("{event: viewed_offer, min_count: 4, within_days: 7}", {1}),
    "viewed_at_most_once": ("{event: viewed_offer, max_count: 1, within_days: 7}", {3, 4, 5}),
    "viewed_gold_ever_twice": (
        "{event: viewed_offer, min_count: 2, where: {offer_id: gold}}",
        {1, 2, 3},
    ),
    "between_2_and_3_views": (
        "{event: viewed_offer, min_count: 2, max_count: 3, within_days: 7}",
        {2},
    ),
    "never_purchased": ("{event: purchased, max_count: 0}", {1, 3, 4, 5}),
    "donate_page": ("{event: page_view, where: {url: /donate}}", {4}),
    "same_offer_not_bought": (
        "{event: viewed_offer, same: offer_id, min_count: 3, within_days: 7, without: purchased}",
        {1},
    ),
}
INTEREST_SEGMENTS = {
    "newsletter_in": ("{interest: newsletter, status: opted_in}", {1}),
    "newsletter_out": ("{interest: Newsletter, status: opted_out}", {2}),
}


def _yaml(segments: dict[str, tuple[str, set[int]]], extra: str = "") -> str:
    lines = ["segments:"]
    for name, (condition, _) in segments.items():
        lines += [f"  - name: {name}", "    all:", f"      - {condition}"]
    return "\n".join(lines) + "\n" + extra


NESTED = """
  - name: nested
    all:
      - {attribute: state, op: in, value: [CA, NY]}
      - any:
          - {attribute: lifetime_value, op: gt, value: 20000}
          - {interest: Newsletter, status: opted_in}
  - name: in_eq_state_not_nested
    all:
      - {segment: eq_state}
      - {segment: nested, member: false}
  - name: top_level_any
    any:
      - {segment: Newsletter Opt-In}
      - all:
          - {attribute: state, op: eq, value: TX}
          - {attribute: lifetime_value, op: lt, value: 10}
"""
NESTED_EXPECTED = {"nested": {1, 2}, "in_eq_state_not_nested": {4}, "top_level_any": {1, 3}}
ALL_SEGMENTS = {**ATTRIBUTE_SEGMENTS, **EVENT_SEGMENTS, **INTEREST_SEGMENTS}


@pytest.fixture(scope="module")
def deployment_with_rules(tmp_path_factory) -> Deployment:
    with deployment_at(tmp_path_factory.mktemp("rules") / "deployment") as deployment:
        deployment.drop("constituents_a.csv", CONSTITUENTS)
        deployment.drop("segmentation_a.csv", SEGMENTATION)
        deployment.drop("events_a.csv", EVENTS)
        deployment.data.segments_yaml.write_text(_yaml(ALL_SEGMENTS, NESTED))
        deployment.first_run = deployment.run(as_of=AS_OF)
        yield deployment


def members(deployment: Deployment) -> dict[str, set[int]]:
    rows = deployment.query(
        """
        SELECT s.name, list(m.cons_id) AS ids
        FROM segments s LEFT JOIN segment_members m USING (segment_id)
        WHERE s.kind = 'data_driven' GROUP BY s.name
        """
    )
    return {name: {i for i in ids if i is not None} for name, ids in rows.iter_rows()}


def test_events_file_applies_with_reasons_for_refused_rows(deployment_with_rules: Deployment):
    code, printed = deployment_with_rules.first_run
    assert code == 0, printed
    upload = deployment_with_rules.upload("events_a.csv")
    assert (upload["rows_in"], upload["rows_applied"]) == (15, 12)
    assert (upload["rows_ignored"], upload["rows_rejected"], upload["rows_superseded"]) == (1, 1, 1)
    errors = deployment_with_rules.errors("events_a.csv")
    reasons = dict(zip(errors["line"], errors["reason"], strict=True))
    assert reasons["14"] == "constituent not found: no member_id 9"
    assert reasons["15"].startswith("invalid timestamp")
    stored = deployment_with_rules.query(
        """SELECT "timestamp", properties['offer_id'] AS offer FROM events
           WHERE cons_id = 3 ORDER BY "timestamp" """
    )
    assert stored["timestamp"].to_list()[1:] == [
        datetime(2026, 11, 6, 10, 0),
        datetime(2026, 11, 7, 1, 30),
    ]
    assert stored["offer"].to_list() == ["gold"] * 3


@pytest.mark.parametrize("name", list(ALL_SEGMENTS))
def test_each_condition_kind_matches_the_hand_computed_members(
    deployment_with_rules: Deployment, name: str
):
    assert members(deployment_with_rules)[name] == ALL_SEGMENTS[name][1]


def test_nested_groups_and_segments_of_segments(deployment_with_rules: Deployment):
    found = members(deployment_with_rules)
    assert {name: found[name] for name in NESTED_EXPECTED} == NESTED_EXPECTED


def test_rule_segments_are_data_driven_with_sizes_in_metadata(deployment_with_rules: Deployment):
    kinds = deployment_with_rules.query(
        "SELECT DISTINCT kind FROM segments WHERE name IN ('eq_state', 'nested')"
    )
    assert kinds["kind"].to_list() == ["data_driven"]
    instance = deployment_with_rules.instance()
    event = instance.get_latest_materialization_event(__import__("dagster").AssetKey("segments"))
    metadata = event.asset_materialization.metadata
    assert metadata["size: eq_state"].value == 2
    assert metadata["size: never_purchased"].value == 4


def test_changes_between_runs_are_history_and_bad_rules_change_nothing(
    deployment_with_rules: Deployment,
):
    """Runs last in this module: it changes the shared deployment."""
    deployment = deployment_with_rules
    before = members(deployment)
    # The YAML changes (eq_state now NY; lt_ltv removed) and person 4 views gold three times.
    changed = {k: v for k, v in ALL_SEGMENTS.items() if k != "lt_ltv"}
    changed["eq_state"] = ("{attribute: state, op: eq, value: NY}", {2})
    deployment.data.segments_yaml.write_text(_yaml(changed, NESTED))
    deployment.drop(
        "events_b.csv",
        csv(
            "member_id,event,timestamp,offer_id",
            *[f"4,viewed_offer,2026-11-0{day}T08:00:00Z,gold" for day in (3, 4, 5)],
        ),
    )
    code, printed = deployment.run(as_of=AS_OF)
    assert code == 0, printed

    after = members(deployment)
    assert "lt_ltv" not in after
    assert after["eq_state"] == {2}
    assert after["in_eq_state_not_nested"] == set()  # follows eq_state in the same refresh
    assert after["viewed_gold_3_in_week"] == {1, 2, 4}
    assert after["viewed_at_most_once"] == {3, 5}
    history = deployment.query(
        """
        SELECT s.name, h.cons_id, h.change FROM membership_history h
        JOIN segments s USING (segment_id)
        WHERE h.run_id IS NOT NULL AND h."at" > (
            SELECT max("at") FROM membership_history h2 JOIN segments s2 USING (segment_id)
            WHERE s2.name = 'nested')
        ORDER BY ALL
        """
    )
    assert set(history.iter_rows()) == {
        ("eq_state", 1, "left"),
        ("eq_state", 4, "left"),
        ("eq_state", 2, "entered"),
        ("in_eq_state_not_nested", 4, "left"),
        ("viewed_at_most_once", 4, "left"),
        # three gold views in the week for person 4:
        *[(name, 4, "entered") for name in ("viewed_gold_3_in_week", "viewed_gold_2_in_week")],
        *[(name, 4, "entered") for name in ("viewed_gold_ever_twice", "between_2_and_3_views")],
        ("same_offer_not_bought", 4, "entered"),
    }
    removed = deployment.query(
        "SELECT cons_id, change FROM membership_history "
        "WHERE segment_id NOT IN (SELECT segment_id FROM segments)"
    )
    assert sorted(removed.rows()) == [(3, "entered"), (3, "left")]  # lt_ltv: first run, then gone

    # A rule naming an unknown attribute fails the refresh and leaves every segment as it was.
    deployment.data.segments_yaml.write_text(
        _yaml(changed) + "  - name: Typo\n    all: [{attribute: lifetme_value, op: gt, value: 1}]\n"
    )
    code, printed = deployment.run(as_of=AS_OF)
    assert code == 1
    assert "segment 'Typo': unknown attribute 'lifetme_value'" in printed
    assert members(deployment) == after
    assert before != after


def test_sample_segments_from_its_events(sample: Deployment):
    """The sample's rules as of the day after its events: see data/inbox/events_*.csv."""
    code, printed = sample.run(as_of=datetime(2026, 11, 7))
    assert code == 2, printed  # the sample's deliberately bad segmentation file
    found = members(sample)
    # cons_ids: the sample's member M-1001 is cons_id 1, and so on.
    assert found["High value donors"] == {1, 6}  # M-1003 bought the gold offer
    assert found["Offer window shoppers"] == {1, 2, 6}  # M-1009: two views this week
    assert found["Donate page visitors"] == {1, 2, 4, 7, 9}
    errors = sample.errors("events_2026-11-06_web.csv")
    assert errors["reason"].to_list() == [
        "constituent not found: no member_id M-9999",
        "invalid timestamp; use ISO 8601, e.g. 2026-10-20T14:03:00Z or 2026-10-20 14:03:00+02:00",
    ]
