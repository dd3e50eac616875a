"""Manual segment uploads (Customer.io, Lumen) through `segpipe run`, and `segpipe segment
delete`: one run shared by the module, files in arrival order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from segpipe.cli import main
from segpipe_tests.conftest import Deployment, csv, deployment_at

CONSTITUENTS = csv(
    "member_id,email,phone,external_id,email_opt_in,sms_opt_in",
    "1,ann@example.org,2025550101,EXT-1,yes,yes",
    "2,bob@example.org,2025550102,EXT-2,yes,yes",
    "3,cara@example.org,2025550103,EXT-3,yes,yes",
    "4,dan@example.org,2025550104,EXT-4,yes,yes",
)
FIRST = "manual_segment_first.csv"
SECOND = "manual_segment_second.csv"
NO_IDENTIFIER = "manual_segment_no_identifier.csv"


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment_at(tmp_path_factory.mktemp("manual")) as deployment:
        deployment.data.segments_yaml.write_text(
            "segments:\n"
            "  - name: Big Donors\n"
            "    all:\n"
            "      - {attribute: external_id, op: eq, value: EXT-NOBODY}\n"
        )
        deployment.run()  # creates the data-driven segment before any upload names it
        deployment.drop("constituents.csv", CONSTITUENTS)
        deployment.drop(
            "segmentation.csv", csv("member_id,interest_name,opt", "1,Monthly Newsletter,in")
        )
        deployment.drop("shop_subscriber_segment_20261103.csv", csv("2025550102,VIP"))
        deployment.drop(
            FIRST,
            csv(
                "segment,email,member_id,external_id,action",
                "Board,ANN@example.org,,,add",
                "board,,2,,",  # same segment, other case; no action means add
                "Board,,,EXT-3,ADD",
                "Board,,4,,add",
                "Board,,4,,remove",  # dan's later row wins: never added
                "Board,zed@example.org,,,add",
                "Board,,99,,add",
                "Board,,,EXT-99,add",
                "Board,,1,,maybe",
                "Big Donors,,1,,add",
                "Monthly Newsletter Opt-In,,2,,add",
                "VIP,,1,,add",
                "Nowhere,,1,,remove",
                "Board,,,,add",
                ",,1,,add",
                "Board,,abc,,add",
            ),
        )
        deployment.drop(
            SECOND,
            csv("segment,external_id,action", "Board,EXT-2,remove", "Gala,EXT-4,add"),
        )
        deployment.drop(NO_IDENTIFIER, csv("segment,first_name", "Board,Ann"))
        deployment.code, deployment.printed = deployment.run()
        yield deployment


def test_adds_and_removes_by_email_member_id_and_external_id(lists: Deployment):
    assert lists.code == 2, lists.printed  # NO_IDENTIFIER is rejected
    # ann, bob, cara added by the first file; dan's remove won; bob removed by the second.
    assert lists.members("Board") == {1, 3}
    assert lists.members("Gala") == {4}


def test_unknown_segments_are_created_as_manual(lists: Deployment):
    kinds = dict(lists.query("SELECT name, kind FROM segments").iter_rows())
    assert kinds["Board"] == kinds["Gala"] == "manual"
    assert "board" not in kinds and "Nowhere" not in kinds


def test_refused_rows_carry_their_reason(lists: Deployment):
    errors = lists.errors(FIRST)
    assert dict(zip(errors["line"].cast(int), errors["reason"], strict=True)) == {
        7: "constituent not found: no one has that email",
        8: "constituent not found: no member_id 99",
        9: "constituent not found: no external_id EXT-99",
        10: "unrecognized action; use add or remove",
        11: "segment Big Donors is data-driven (defined in segments.yaml) and cannot be "
        "edited by hand",
        12: "segment Monthly Newsletter Opt-In is an interest group; change it with a "
        "segmentation upload",
        13: "segment VIP is a subscriber segment; each Attentive delivery replaces it",
        14: "no segment named Nowhere to remove from",
        15: "row names no person: cons_id, member_id, external_id, email are empty",
        16: "missing segment",
        17: "constituent not found: no member_id abc",  # member ids are text
    }
    upload = lists.upload(FIRST)
    assert (upload["rows_in"], upload["rows_applied"], upload["rows_superseded"]) == (16, 4, 1)
    assert (upload["rows_rejected"], upload["rows_ignored"]) == (6, 5)


def test_other_kinds_of_segment_are_not_changed(lists: Deployment):
    assert lists.members("Big Donors") == set()
    assert lists.members("Monthly Newsletter Opt-In") == {1}
    assert lists.members("VIP") == {2}


def test_a_file_without_an_identifier_column_is_rejected_whole(lists: Deployment):
    upload = lists.upload(NO_IDENTIFIER)
    assert upload["status"] == "rejected"
    assert upload["error"] == (
        "missing required column: one of cons_id, member_id, external_id, email"
    )


def test_history_records_each_entry_and_exit_with_its_upload(lists: Deployment):
    history = lists.query(
        "SELECT u.file_name, h.cons_id, h.change FROM membership_history h "
        "JOIN uploads u USING (upload_id) JOIN segments s USING (segment_id) "
        "WHERE s.name = 'Board' ORDER BY u.file_name, h.cons_id"
    )
    assert history.rows() == [
        (FIRST, 1, "entered"),
        (FIRST, 2, "entered"),
        (FIRST, 3, "entered"),
        (SECOND, 2, "left"),
    ]


def delete(deployment: Deployment, name: str, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["segment", "delete", name, "--data-dir", str(deployment.data.root)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_segment_delete_refuses_unknown_interest_group_and_data_driven_segments(
    lists: Deployment, capsys: pytest.CaptureFixture
):
    assert delete(lists, "No Such List", capsys) == (
        1,
        "segpipe: cannot delete segment: no segment named 'No Such List' (see `segpipe status`)\n",
    )
    code, said = delete(lists, "Monthly Newsletter Opt-In", capsys)
    assert code == 1
    assert "interest group of the interest 'Monthly Newsletter'" in said
    code, said = delete(lists, "big donors", capsys)
    assert code == 1
    assert "data-driven segment defined in segments.yaml" in said
    assert lists.members("Monthly Newsletter Opt-In") == {1}


def test_segment_delete_removes_the_segment_and_memberships_never_people(
    lists: Deployment, capsys: pytest.CaptureFixture
):
    people = lists.query("SELECT count(*) AS n FROM constituents")["n"][0]

    code, said = delete(lists, "board", capsys)

    assert (code, said) == (
        0,
        "deleted manual segment 'Board': 2 membership(s) removed, no people deleted\n",
    )
    assert lists.query("SELECT * FROM segments WHERE name = 'Board'").is_empty()
    assert lists.query(
        "SELECT * FROM segment_memberships WHERE segment_id NOT IN "
        "(SELECT segment_id FROM segments)"
    ).is_empty()
    assert lists.query("SELECT count(*) AS n FROM constituents")["n"][0] == people
    exits = lists.query(
        "SELECT cons_id, run_id FROM membership_history "
        "WHERE change = 'left' AND upload_id IS NULL ORDER BY cons_id"
    )
    assert exits.rows() == [(1, "segpipe segment delete"), (3, "segpipe segment delete")]
    code, said = delete(lists, "VIP", capsys)
    assert (code, said) == (
        0,
        "deleted subscriber segment 'VIP (shop)': 1 membership(s) removed, no people deleted\n",
    )
    main(["status", "--data-dir", str(lists.data.root)])
    status = capsys.readouterr().out
    assert "Gala" in status
    assert "Board" not in status and "VIP" not in status
