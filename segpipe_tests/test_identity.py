"""People as Luminate and Customer.io identify them: cons_id, text member ids, the anchors' own
headers; through `segpipe run` on a real deployment."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from segpipe import cli
from segpipe.warehouse.connection import connect
from segpipe.warehouse.history import members_at
from segpipe.warehouse.migrate import SEGMENT_HIGH_WATER_KEY
from segpipe_tests.conftest import Deployment, csv, deployment_at

# Luminate's own export headers; member ids as a CRM (Raiser's Edge) and Customer.io give them.
PEOPLE = csv(
    "CONS_ID,MEMBER_ID,PRIMARY_EMAIL,FIRST_NAME,LAST_NAME",
    ",RE-00017,ann@example.org,Ann,Lee",  # cons_id 1
    ",M-1002,bob@example.org,Bob,Ray",  # 2
    ",,cy@example.org,Cy,Doe",  # 3, no member id yet
    ",,dee@example.org,Dee,Fox",  # 4
    ",cus_8f2a,eve@example.org,Eve,Kim",  # 5
)

# Each branch of Luminate's Standard Constituent Import matching order, one line each.
MATCHING = csv(
    "cons_id,member_id,email,first_name",
    "1,,,Annie",  # line 2: by cons_id
    "42,,,Nobody",  # 3: no such cons_id -> rejected
    ",M-1002,,Robert",  # 4: by member_id
    ",M-3003,cy@example.org,Cyrus",  # 5: new member id, email of a person without one -> Cy
    ",M-4004,nia@example.org,Nia",  # 6: new member id, unknown email -> new person (6)
    ",M-5005,eve@example.org,Eve2",  # 7: email belongs to member cus_8f2a -> rejected
    ",,dee@example.org,Deedee",  # 8: by email
    ",,fay@example.org,Fay",  # 9: nothing matches -> new person (7)
    "2,RE-00017,,Zed",  # 10: cons_id and member_id of two people -> rejected
    ",RE-00017,bob@example.org,Zed",  # 11: member_id and email of two people -> rejected
)

FILES = [
    ("constituents_1.csv", PEOPLE),
    ("constituents_2_matching.csv", MATCHING),
    (
        "segmentation_3.csv",
        csv(
            "MEMBER_ID,INTEREST_NAME,opt",
            "RE-00017,News,in",
            "M-1002,News,in",
            "m-1002,News,in",  # member ids are case-sensitive: nobody
            "M-4004,News,out",
        ),
    ),
    (
        "events_4.csv",
        csv(
            "member_id,event,timestamp",
            "cus_8f2a,page_view,2026-11-01T00:00:00Z",
            "M-3003,page_view,2026-11-01T00:00:00Z",
            "nobody-1,page_view,2026-11-01T00:00:00Z",
        ),
    ),
    # Customer.io's manual segment export: the profile id is the member id.
    ("manual_segment_5.csv", csv("segment,id", "VIPs,cus_8f2a", "VIPs,M-4004", "VIPs,cus_zzzz")),
    ("manual_segment_6.csv", csv("segment,cons_id", "VIPs,7", "VIPs,99")),
    (
        "segmentation_7.csv",
        csv("cons_id,email,interest_name,opt", "3,,News,in", ",fay@example.org,News,in"),
    ),
    # Mailchimp's and Klaviyo's headers.
    (
        "constituents_8_mailchimp.csv",
        csv(
            "Email Address,First Name,Last Name,Phone Number",
            "gus@example.org,Gus,Hale,(202) 555-0144",
        ),
    ),
    (
        "constituents_9_twice.csv",
        csv("email,PRIMARY_EMAIL,first_name", "a@example.org,b@example.org,A"),
    ),
    ("manual_segment_10_twice.csv", csv("segment,id,Member ID", "VIPs,cus_8f2a,cus_8f2a")),
]


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Deployment:
    with deployment_at(tmp_path_factory.mktemp("identity") / "deployment") as deployment:
        for name, content in FILES:
            deployment.drop(name, content)
        deployment.run()
        yield deployment


def people(deployment: Deployment) -> dict[int, tuple]:
    rows = deployment.query("SELECT cons_id, member_id, email, first_name FROM constituents")
    return {row[0]: row[1:] for row in rows.iter_rows()}


def reasons(deployment: Deployment, file_name: str) -> dict[int, str]:
    errors = deployment.errors(file_name)
    return dict(zip(errors["line"].cast(int), errors["reason"], strict=True))


def test_a_luminate_export_creates_people_with_text_member_ids(ran: Deployment):
    upload = ran.upload("constituents_1.csv")
    assert (upload["rows_applied"], upload["rows_rejected"]) == (5, 0)
    found = people(ran)
    assert found[1] == ("RE-00017", "ann@example.org", "Annie")
    assert found[5] == ("cus_8f2a", "eve@example.org", "Eve")


def test_each_branch_of_the_matching_order(ran: Deployment):
    upload = ran.upload("constituents_2_matching.csv")
    assert (upload["rows_in"], upload["rows_applied"], upload["rows_rejected"]) == (10, 6, 4)
    assert people(ran) == {
        1: ("RE-00017", "ann@example.org", "Annie"),  # by cons_id
        2: ("M-1002", "bob@example.org", "Robert"),  # by member_id
        3: ("M-3003", "cy@example.org", "Cyrus"),  # the email's person took the member id
        4: (None, "dee@example.org", "Deedee"),  # by email
        5: ("cus_8f2a", "eve@example.org", "Eve"),  # untouched by the refused line 7
        6: ("M-4004", "nia@example.org", "Nia"),  # new, with its member id
        7: (None, "fay@example.org", "Fay"),  # new
        8: (None, "gus@example.org", "Gus"),  # the Mailchimp file, later
    }
    assert reasons(ran, "constituents_2_matching.csv") == {
        3: "constituent not found: no cons_id 42",
        7: "member_id M-5005 and email e***@example.org name different constituents "
        "(the email is member_id cus_8f2a, cons_id 5)",
        10: "cons_id 2 and member_id RE-00017 name different constituents "
        "(member_id RE-00017 is cons_id 1)",
        11: "member_id RE-00017 and email b***@example.org name different constituents "
        "(cons_id 1 and cons_id 2)",
    }


def test_segmentation_events_and_manual_lists_name_people_by_text_member_id(ran: Deployment):
    statuses = ran.query(
        "SELECT m.cons_id, m.status FROM interest_memberships m JOIN interests i "
        "USING (interest_id) WHERE i.name = 'News' ORDER BY 1"
    ).rows()
    assert statuses == [
        (1, "opted_in"),
        (2, "opted_in"),
        (3, "opted_in"),  # by cons_id
        (6, "opted_out"),
        (7, "opted_in"),  # by email
    ]
    assert reasons(ran, "segmentation_3.csv") == {4: "constituent not found: no member_id m-1002"}
    events = ran.query("SELECT cons_id FROM events ORDER BY 1")["cons_id"].to_list()
    assert events == [3, 5]
    assert reasons(ran, "events_4.csv") == {4: "constituent not found: no member_id nobody-1"}
    assert ran.members("VIPs") == {5, 6, 7}
    assert reasons(ran, "manual_segment_5.csv") == {
        4: "constituent not found: no member_id cus_zzzz"
    }
    assert reasons(ran, "manual_segment_6.csv") == {3: "constituent not found: no cons_id 99"}
    history = ran.query(
        "SELECT h.cons_id FROM membership_history h JOIN segments s USING (segment_id) "
        "WHERE s.name = 'VIPs' AND h.change = 'entered' ORDER BY 1"
    )["cons_id"].to_list()
    assert history == [5, 6, 7]


def test_mailchimp_headers_are_aliases(ran: Deployment):
    gus = ran.query("SELECT first_name, last_name, phone FROM constituents WHERE cons_id = 8")
    assert gus.rows() == [("Gus", "Hale", "+12025550144")]


def test_two_columns_meaning_the_same_thing_reject_the_file(ran: Deployment):
    twice = ran.upload("constituents_9_twice.csv")
    assert twice["status"] == "rejected"
    assert twice["error"] == (
        "columns 'email' and 'PRIMARY_EMAIL' both mean email; keep one of them"
    )
    ids = ran.upload("manual_segment_10_twice.csv")
    assert ids["error"] == "columns 'id' and 'Member ID' both mean member_id; keep one of them"
    assert ran.query("SELECT count(*) AS n FROM constituents WHERE email = 'a@example.org'")[
        "n"
    ].to_list() == [0]


def test_a_cons_id_is_never_given_twice(deployment: Deployment):
    deployment.drop("constituents_a.csv", csv("email", "one@example.org", "two@example.org"))
    deployment.run()
    deployment.query("DELETE FROM constituents WHERE cons_id = 2")  # the newest person goes
    deployment.drop("constituents_b.csv", csv("member_id,email", "M-3,three@example.org"))
    deployment.run()
    assert deployment.query("SELECT cons_id, member_id FROM constituents ORDER BY 1").rows() == [
        (1, None),
        (3, "M-3"),
    ]


# Ann and Bob, both with an email for the destination that takes every segment.
ANN_AND_BOB = csv("member_id,email,email_opt_in", "M-A,a@example.org,y", "M-B,b@example.org,y")
EVERY_SEGMENT_TO_MAILCHIMP = 'destinations:\n  - {name: mailchimp, key: email, segments: ["*"]}\n'


def _history(deployment: Deployment, member_id: str, capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    cli.main(["history", "--member-id", member_id, "--data-dir", str(deployment.data.root)])
    return capsys.readouterr().out


def _segment_ids(deployment: Deployment) -> dict[str, int]:
    return dict(deployment.query("SELECT name, segment_id FROM segments").rows())


def test_a_deleted_segments_id_is_never_given_to_a_new_segment(
    deployment: Deployment, capsys: pytest.CaptureFixture
):
    """A new segment once got the id of the deleted newest one, and with it its history and its
    destinations' baseline: its first sync removed people it never had."""
    deployment.data.segments_yaml.write_text(EVERY_SEGMENT_TO_MAILCHIMP)
    deployment.drop("constituents_a.csv", ANN_AND_BOB)
    deployment.drop("manual_segment_a.csv", csv("segment,member_id", "Old list,M-A"))
    deployment.run()
    old = _segment_ids(deployment)["Old list"]
    data_dir = ["--data-dir", str(deployment.data.root)]
    assert cli.main(["segment", "delete", "Old list", *data_dir]) == 0
    before_new = datetime.now(UTC).replace(tzinfo=None)
    deployment.drop("manual_segment_b.csv", csv("segment,member_id", "New list,M-B"))
    deployment.run()

    assert _segment_ids(deployment)["New list"] > old
    audience = deployment.data.exports / "mailchimp" / "New_list"
    assert (audience / "adds.csv").read_text().split() == ["email", "b@example.org"]
    assert (audience / "removes.csv").read_text().split() == ["email"]
    with connect(deployment.data.warehouse) as con:
        assert members_at(con, "New list", before_new).is_empty()
    assert "New list" not in _history(deployment, "M-A", capsys)


def test_a_removed_rules_segment_id_is_never_given_to_a_new_rule(deployment: Deployment):
    deployment.data.segments_yaml.write_text(
        EVERY_SEGMENT_TO_MAILCHIMP
        + "segments:\n  - name: Rule A\n    all:\n"
        + "      - {attribute: member_id, op: eq, value: M-A}\n"
    )
    deployment.drop("constituents_a.csv", ANN_AND_BOB)
    deployment.run()
    old = _segment_ids(deployment)["Rule A"]
    deployment.data.segments_yaml.write_text(
        EVERY_SEGMENT_TO_MAILCHIMP
        + "segments:\n  - name: Rule B\n    all:\n"
        + "      - {attribute: member_id, op: eq, value: M-B}\n"
    )
    deployment.run()

    assert _segment_ids(deployment)["Rule B"] > old
    audience = deployment.data.exports / "mailchimp" / "Rule_B"
    assert (audience / "adds.csv").read_text().split() == ["email", "b@example.org"]
    assert (audience / "removes.csv").read_text().split() == ["email"]


def test_an_undone_interests_ids_are_never_given_again(
    deployment: Deployment, capsys: pytest.CaptureFixture
):
    """Undoing the upload that created an interest removes it and its two groups (segments):
    the next interest gets neither its interest id nor its groups' segment ids."""
    deployment.drop("constituents_a.csv", ANN_AND_BOB)
    deployment.drop("segmentation_a.csv", csv("member_id,interest_name,opt", "M-A,News,in"))
    deployment.run()
    undone = deployment.query("SELECT interest_id FROM interests").rows()
    undone_groups = set(_segment_ids(deployment).values())
    upload_id = deployment.upload("segmentation_a.csv")["upload_id"]
    assert cli.main(["undo", upload_id, "--data-dir", str(deployment.data.root)]) == 0
    deployment.drop("segmentation_b.csv", csv("member_id,interest_name,opt", "M-B,Gala,in"))
    deployment.run()

    ((interest_id,),) = deployment.query("SELECT interest_id FROM interests").rows()
    assert interest_id > undone[0][0]
    assert min(_segment_ids(deployment).values()) > max(undone_groups)
    assert "Gala" not in _history(deployment, "M-A", capsys)


def test_a_warehouse_older_than_the_mark_gives_no_id_it_deleted_before(deployment: Deployment):
    """A warehouse made before segment ids had a high-water mark, whose newest segment was
    already deleted: the mark starts above the ids its history and sync baselines still hold."""
    deployment.data.segments_yaml.write_text(EVERY_SEGMENT_TO_MAILCHIMP)
    deployment.drop("constituents_a.csv", ANN_AND_BOB)
    deployment.drop("manual_segment_a.csv", csv("segment,member_id", "Old list,M-A"))
    deployment.run()
    old = _segment_ids(deployment)["Old list"]
    assert cli.main(["segment", "delete", "Old list", "--data-dir", str(deployment.data.root)]) == 0
    deployment.query(  # as an older segpipe left it: no mark
        "DELETE FROM segpipe_meta WHERE key = ? RETURNING key", [SEGMENT_HIGH_WATER_KEY]
    )
    deployment.drop("manual_segment_b.csv", csv("segment,member_id", "New list,M-B"))
    deployment.run()

    assert _segment_ids(deployment)["New list"] > old
    removes = deployment.data.exports / "mailchimp" / "New_list" / "removes.csv"
    assert removes.read_text().split() == ["email"]


def test_rows_naming_one_new_member_id_twice_are_one_person(deployment: Deployment):
    deployment.drop(
        "constituents.csv", csv("member_id,email", " M-7 ,h1@example.org", "M-7,h2@example.org")
    )
    deployment.run()
    upload = deployment.upload("constituents.csv")
    # Spaces around an id are not part of it: one new person, whose later line wins.
    assert (upload["rows_applied"], upload["rows_superseded"]) == (1, 1)
    assert deployment.query("SELECT cons_id, member_id, email FROM constituents").rows() == [
        (1, "M-7", "h2@example.org")
    ]


def test_a_row_refused_for_its_own_conflict_does_not_take_a_good_row_down(
    deployment: Deployment,
):
    """Line 3 names cons_id 2 with member_id M-1, which is cons_id 1's: refused, for that. Line 2
    (cons_id 1 keeping its own M-1) is right and applies: the two rows only share a member id
    because line 3 is wrong."""
    deployment.drop(
        "constituents_1.csv",
        csv("member_id,email,first_name", "M-1,a@example.org,A", "M-2,b@example.org,B"),
    )
    deployment.drop(
        "constituents_2.csv", csv("CONS_ID,MEMBER_ID,FIRST_NAME", "1,M-1,Alice", "2,M-1,Bobby")
    )
    deployment.run()

    upload = deployment.upload("constituents_2.csv")
    assert (upload["rows_applied"], upload["rows_rejected"]) == (1, 1)
    errors = pl.read_csv(deployment.data.errors_csv(upload["upload_id"]))
    assert errors["line"].to_list() == [3]
    assert "name different constituents" in errors["reason"][0]
    names = deployment.query("SELECT cons_id, first_name FROM constituents ORDER BY 1").rows()
    assert names == [(1, "Alice"), (2, "B")]
