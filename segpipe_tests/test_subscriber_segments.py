"""Attentive subscriber segment uploads through `segpipe run`: one run, files in arrival order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from segpipe.ingest import normalize
from segpipe_tests.conftest import Deployment, csv, deployment_at

CONSTITUENTS = csv(
    "member_id,email,phone,email_opt_in,sms_opt_in",
    "1,ann@example.org,(202) 555-0101,yes,yes",
    "2,bob@example.org,202-555-0102,yes,no",
    "3,cara@example.org,2025550103,no,yes",
    "4,dan@example.org,+1 202 555 0104,yes,yes",
    "5,eve@example.org,+44 20 7946 0958,yes,yes",
    "6,fay@example.org,202.555.0106,yes,yes",
)
LONG_NAME = "S" * 65
FIRST = "shop_subscriber_segment_20261103.csv"
SECOND_1 = "shop_subscriber_segment_20261104_1.csv"
SECOND_2 = "shop_subscriber_segment_20261104_2.csv"
STALE = "shop_subscriber_segment_20261102.csv"
EMAILS = "mail_subscriber_segment_20261104.csv"
MANUAL = "manual_segment_staff.csv"
NAMES_MANUAL = "mail_subscriber_segment_20261105.csv"
WHOLE_FILE_REJECTS = {
    "shop_subscriber_segment_2026113.csv": "must be named {domain}_subscriber_segment_{YYYYMMDD}",
    "shop_subscriber_segment_2026-11-05.csv": "must be named {domain}_subscriber_segment_",
    "shop_subscriber_segment_20261131.csv": "20261131 is not a valid YYYYMMDD date",
    "head_subscriber_segment_20261105.csv": "line 1 is a header row; subscriber segment files "
    "carry no header",
    # Attentive's own export header: neither cell is a name segpipe knows, but line 2 is a
    # phone and line 1 is not
    "title_subscriber_segment_20261105.csv": "line 1 is a header row; subscriber segment files "
    "carry no header",
    "mixed_subscriber_segment_20261105.csv": "file mixes phone numbers and emails (first phone on "
    "line 2, first email on line 1)",
}
WHOLE_FILE_CONTENT = {
    "head_subscriber_segment_20261105.csv": csv("phone,segment", "2025550101,VIP"),
    "title_subscriber_segment_20261105.csv": csv(
        "Mobile Phone,Segment Title", "(202) 555-0101,VIP", "2025550104,VIP"
    ),
    "mixed_subscriber_segment_20261105.csv": csv("ann@example.org,VIP", "2025550101,VIP"),
}


@pytest.fixture(scope="module")
def attentive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment_at(tmp_path_factory.mktemp("attentive")) as deployment:
        deployment.drop("constituents.csv", CONSTITUENTS)
        deployment.drop(
            FIRST,
            csv(
                "(202) 555-0101,VIP",  # ann: enters VIP
                "+1 202.555.0104,VIP",  # dan: enters, then leaves with the 11-04 delivery
                "2025550106,Keep",  # fay: Keep is never named again, so it stays
                "202-555-0102,VIP",  # bob: has not opted in to SMS
                "2025550199,VIP",  # nobody has this phone
                "12345,VIP",  # not a phone number
                f"2025550101,{LONG_NAME}",
                "2025550101,Winter Sale!",
                "2025550101,",
                ",VIP",
                "1-202-555-0101,VIP",  # ann again: supersedes line 1
                "0123456789,VIP",  # was stored as +10123456789
            ),
        )
        deployment.drop(SECOND_1, csv("2025550101,VIP", "2025550103,Cart"))
        deployment.drop(SECOND_2, csv("+44 20 7946 0958,VIP", "2025550199,Gone"))
        deployment.drop(STALE, csv("2025550104,VIP"))
        for position, name in enumerate(WHOLE_FILE_REJECTS):
            # distinct bytes, or later ones would be recorded as duplicates of the first
            deployment.drop(name, WHOLE_FILE_CONTENT.get(name, csv(f"2025550101,Try {position}")))
        deployment.drop(
            EMAILS,
            csv(
                " Ann@Example.org ,Newsletter",
                "cara@example.org,Newsletter",  # has not opted in to email
                "zed@example.org,Newsletter",
                "not-an-email@,Newsletter",
            ),
        )
        deployment.drop(MANUAL, csv("segment,member_id", "Staff,4"))
        deployment.drop(NAMES_MANUAL, csv("ann@example.org,Staff", "dan@example.org,Newsletter"))
        deployment.code, deployment.printed = deployment.run()
        yield deployment


def reasons(deployment: Deployment, file_name: str) -> dict[int, str]:
    errors = deployment.errors(file_name)
    return dict(zip(errors["line"].cast(int), errors["reason"], strict=True))


def test_the_run_reports_rejected_files(attentive: Deployment):
    assert attentive.code == 2, attentive.printed


@pytest.mark.parametrize("file_name", sorted(WHOLE_FILE_REJECTS))
def test_bad_names_header_rows_and_mixed_files_are_rejected_whole(
    attentive: Deployment, file_name: str
):
    upload = attentive.upload(file_name)
    assert upload["status"] == "rejected"
    assert WHOLE_FILE_REJECTS[file_name] in upload["error"]
    assert WHOLE_FILE_REJECTS[file_name] in attentive.errors(file_name)["reason"][0]


def test_rows_are_refused_or_ignored_with_a_reason(attentive: Deployment):
    assert reasons(attentive, FIRST) == {
        4: "constituent has not opted in to SMS (sms_opt_in)",
        5: "no constituent with that phone number",
        6: normalize.PHONE_NOT_A_NUMBER,
        7: "segment name is longer than 64 characters",
        8: "segment name may contain only letters, digits, spaces, _ and -",
        9: "missing segment",
        10: "row names no subscriber: the first column is empty",
        12: normalize.PHONE_NOT_NANP,  # no North American area code starts with 0
    }
    upload = attentive.upload(FIRST)
    assert (upload["rows_in"], upload["rows_applied"], upload["rows_superseded"]) == (12, 3, 1)
    assert (upload["rows_rejected"], upload["rows_ignored"]) == (6, 2)


def test_emails_need_email_opt_in(attentive: Deployment):
    assert reasons(attentive, EMAILS) == {
        2: "constituent has not opted in to email (email_opt_in)",
        3: "no constituent with that email",
        4: "invalid email",
    }


def test_a_delivery_replaces_the_segments_it_names_with_all_its_files(attentive: Deployment):
    # 11-03 put ann and dan in VIP; the 11-04 delivery (two files) names ann and eve.
    assert attentive.members("VIP") == {1, 5}
    assert attentive.members("Cart") == {3}


def test_segments_a_delivery_does_not_name_are_untouched(attentive: Deployment):
    assert attentive.members("Keep") == {6}


def test_a_segment_named_only_by_unmatched_people_is_emptied(attentive: Deployment):
    kinds = dict(attentive.query("SELECT name, kind FROM segments").iter_rows())
    assert kinds["Gone"] == "subscriber"
    assert attentive.members("Gone") == set()


def test_an_older_delivery_arriving_later_is_rejected_as_stale(attentive: Deployment):
    upload = attentive.upload(STALE)
    assert upload["status"] == "rejected"
    assert upload["error"] == (
        "stale delivery: 2026-11-02 is older than the 2026-11-04 delivery already applied "
        "for domain shop"
    )
    assert upload["rows_in"] == 1
    assert 4 not in attentive.members("VIP")


def test_rows_naming_a_segment_of_another_kind_are_rejected(attentive: Deployment):
    assert reasons(attentive, NAMES_MANUAL) == {
        1: "segment Staff is a manual segment; subscriber files only replace subscriber segments"
    }
    assert attentive.members("Staff") == {4}
    # The same file's other row replaced Newsletter: dan in, ann (from 11-04) out.
    assert attentive.members("Newsletter") == {4}


def test_every_entry_and_exit_is_in_history_with_its_upload(attentive: Deployment):
    history = attentive.query(
        "SELECT u.file_name, h.cons_id, h.change FROM membership_history h "
        "JOIN uploads u USING (upload_id) JOIN segments s USING (segment_id) "
        "WHERE s.name = 'VIP' ORDER BY h.\"at\", u.file_name, h.cons_id, h.change"
    )
    assert history.rows() == [
        (FIRST, 1, "entered"),
        (FIRST, 4, "entered"),
        (SECOND_1, 4, "left"),
        (SECOND_2, 5, "entered"),
    ]


def test_no_phone_or_email_reaches_the_printed_report_or_the_dagster_event_log(
    attentive: Deployment,
):
    with attentive.instance() as instance:
        events = "\n".join(
            str(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id)
        )
    assert "***-***-0101" in events  # the masked previews are there
    for secret in ("555-0101", "2025550101", "ann@example.org", "7946 0958", "442079460958"):
        assert secret not in attentive.printed
        assert secret not in events


def test_a_later_run_extends_the_delivery_and_a_resent_part_replaces_its_earlier_version(
    deployment: Deployment,
):
    deployment.drop("constituents.csv", CONSTITUENTS)
    deployment.drop("shop_subscriber_segment_20261104_1.csv", csv("2025550101,VIP"))
    deployment.drop("shop_subscriber_segment_20261104_2.csv", csv("2025550104,VIP"))
    assert deployment.run()[0] == 0
    assert deployment.members("VIP") == {1, 4}

    # part 2 again, corrected: dan is replaced by fay; part 1 (ann) still counts
    deployment.drop("shop_subscriber_segment_20261104_2.csv", csv("2025550106,VIP"))
    deployment.drop("shop_subscriber_segment_20261104_3.csv", csv("+44 20 7946 0958,VIP"))
    code, printed = deployment.run()

    assert code == 0, printed
    assert deployment.members("VIP") == {1, 5, 6}


def test_an_unchanged_part_of_a_new_delivery_still_counts(tmp_path: Path):
    people = csv(
        "member_id,phone,sms_opt_in",
        "1,2025550101,yes",
        "2,2025550102,yes",
        "3,2025550103,yes",
    )
    with deployment_at(tmp_path / "parts") as deployment:
        deployment.drop("constituents.csv", people)
        deployment.drop("shop_subscriber_segment_20261103_1.csv", csv("2025550101,VIP"))
        deployment.drop("shop_subscriber_segment_20261103_2.csv", csv("2025550102,VIP"))
        deployment.run()
        # The next day's first part has the same bytes as yesterday's: it is part of today.
        deployment.drop("shop_subscriber_segment_20261104_1.csv", csv("2025550101,VIP"))
        deployment.drop("shop_subscriber_segment_20261104_2.csv", csv("2025550103,VIP"))

        code, printed = deployment.run()

        assert code == 0, printed
        assert deployment.upload("shop_subscriber_segment_20261104_1.csv")["status"] == "applied"
        vip = deployment.query(
            "SELECT cons_id FROM segment_members JOIN segments USING (segment_id) "
            "WHERE name = 'VIP' ORDER BY cons_id"
        )
        assert vip["cons_id"].to_list() == [1, 3]


def test_an_attentive_destination_is_sent_only_segments_its_account_may_hold(
    deployment: Deployment,
):
    yaml = (
        "destinations:\n  - {{name: attentive, format: attentive, domain: shop, key: phone, {}}}\n"
    )
    deployment.data.segments_yaml.write_text(yaml.format('segments: ["*"]'))
    deployment.drop("constituents.csv", CONSTITUENTS)
    deployment.drop("shop_subscriber_segment_20261105.csv", csv("2025550101,VIP"))
    # dan subscribed to brand's account only: shop's account must never get him
    deployment.drop(
        "brand_subscriber_segment_20261106.csv", csv("2025550104,VIP", "2025550106,Fans")
    )
    deployment.drop(MANUAL, csv("segment,member_id", "Staff,6"))  # no domain: "*" takes it

    code, printed = deployment.run()

    assert code == 0, printed
    (sent,) = (deployment.data.exports / "attentive").glob("shop_subscriber_segment_*.csv")
    assert sorted(sent.read_text().splitlines()) == ["2025550101,VIP", "2025550106,Staff"]
    assert "attentive / VIP (shop)" in printed and "attentive / Staff" in printed
    assert "(brand)" not in printed.split("\nExports")[1]

    # Named explicitly, another account's segment is refused, naming it and both domains, and
    # nothing is sent.
    before = sent.read_text()
    deployment.data.segments_yaml.write_text(yaml.format("segments: [VIP, Fans]"))
    code, printed = deployment.run()
    assert code == 1
    assert (
        "destination 'attentive': segment 'Fans' is a subscriber segment of domain brand, "
        "not of this destination's domain shop"
    ) in printed
    assert sent.read_text() == before
