"""Values that mean what they say (issue 14), each example through `segpipe run`: attribute
types (declared, inferred, widened), emails, phones, timestamps, and rules that fail alone."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import polars as pl

from segpipe.exit_codes import ExitCode
from segpipe.ingest import normalize
from segpipe_tests.conftest import Deployment, csv

ZIP_EXPORT = """
destinations:
  - {name: mailhouse, format: csv, key: email, fields: [zip], segments: [Everyone]}
segments:
  - name: Everyone
    all:
      - {attribute: email_opt_in, op: eq, value: true}
"""


def column_type(deployment: Deployment, column: str) -> str:
    return deployment.query(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'constituents' AND column_name = ?",
        [column],
    ).item()


def attribute(deployment: Deployment, column: str) -> dict[str, object]:
    rows = deployment.query(f'SELECT email, "{column}" AS v FROM constituents ORDER BY email')
    return dict(rows.iter_rows())


def reasons(deployment: Deployment, file_name: str) -> dict[int, str]:
    errors = deployment.errors(file_name)
    return dict(zip(errors["line"].cast(int), errors["reason"], strict=True))


def test_a_column_that_needs_a_wider_type_is_widened_and_leading_zeros_stay(
    deployment: Deployment,
):
    deployment.data.segments_yaml.write_text(ZIP_EXPORT)
    deployment.drop(
        "constituents_1.csv",
        csv("email,zip,email_opt_in", "ann@example.org,10001,yes", "bob@example.org,94110,no"),
    )
    code, printed = deployment.run()
    assert code == ExitCode.OK, printed
    assert column_type(deployment, "zip") == "BIGINT"
    deployment.drop("constituents_2.csv", csv("email,zip", "cy@example.org,K1A 0B1"))
    deployment.drop("constituents_3.csv", csv("email,zip,email_opt_in", "dee@example.org,02134,y"))

    code, printed = deployment.run()

    assert code == ExitCode.OK, printed
    assert deployment.upload("constituents_2.csv")["status"] == "applied"
    assert deployment.upload("constituents_3.csv")["status"] == "applied"  # not blocked
    assert column_type(deployment, "zip") == "VARCHAR"
    assert attribute(deployment, "zip") == {
        "ann@example.org": "10001",
        "bob@example.org": "94110",
        "cy@example.org": "K1A 0B1",
        "dee@example.org": "02134",
    }
    members = deployment.data.exports / "mailhouse" / "Everyone" / "members.csv"
    exported = pl.read_csv(members, infer_schema=False)
    assert dict(exported.iter_rows()) == {"ann@example.org": "10001", "dee@example.org": "02134"}


def test_leading_zeros_alone_stay_text(deployment: Deployment):
    deployment.drop("constituents.csv", csv("email,zip", "bob@example.org,02134"))
    assert deployment.run()[0] == ExitCode.OK
    assert column_type(deployment, "zip") == "VARCHAR"
    assert attribute(deployment, "zip") == {"bob@example.org": "02134"}


DECLARED = """
attributes:
  lifetime_value: number
  first_gift_date: date
  joined: {type: date, format: "%m/%d/%Y"}
  zip: text
segments:
  - name: Big givers
    all:
      - {attribute: lifetime_value, op: gt, value: 25000}
  - name: Early donors
    all:
      - {attribute: first_gift_date, op: lt, value: 2010-01-01}
  - name: Joined before 2015
    all:
      - {attribute: joined, op: lt, value: 2015-01-01}
"""


def test_declared_types_read_what_spreadsheets_write_and_reject_the_rest(
    deployment: Deployment,
):
    deployment.data.segments_yaml.write_text(DECLARED)
    deployment.drop(
        "constituents.csv",
        csv(
            "member_id,email,lifetime_value,first_gift_date,joined,zip",
            "1,ann@example.org,980.50,2009-06-01,03/15/2012,10001",
            '2,bob@example.org,"$31,250.00",2012-03-15,12/01/2016,02134',
            '3,cy@example.org,"$1,250.00",,,',
            "4,dee@example.org,12 dollars,2001-01-01,,",
            "5,eve@example.org,(75.00),03/15/2012,,",
        ),
    )

    code, printed = deployment.run()

    assert code == ExitCode.OK, printed
    assert reasons(deployment, "constituents.csv") == {
        5: "lifetime_value: '12 dollars' is not a number",
        6: "first_gift_date: '03/15/2012' is not a date",
    }
    assert column_type(deployment, "lifetime_value") == "DOUBLE"
    assert column_type(deployment, "first_gift_date") == "DATE"
    assert column_type(deployment, "joined") == "DATE"
    assert column_type(deployment, "zip") == "VARCHAR"
    assert attribute(deployment, "lifetime_value") == {
        "ann@example.org": 980.5,
        "bob@example.org": 31250.0,
        "cy@example.org": 1250.0,
    }
    assert attribute(deployment, "zip")["ann@example.org"] == "10001"
    assert deployment.members("Big givers") == {2}
    assert deployment.members("Early donors") == {1}
    assert deployment.members("Joined before 2015") == {1}


BIG_GIVERS = """
segments:
  - name: Big givers
    all:
      - {attribute: lifetime_value, op: gt, value: 25000}
  - name: Emailable
    all:
      - {attribute: email_opt_in, op: eq, value: true}
destinations:
  - {name: crm, format: csv, key: email, segments: [Big givers, Emailable]}
"""


def test_a_rule_comparing_text_as_a_number_fails_alone_and_declaring_the_type_mends_it(
    deployment: Deployment,
):
    deployment.data.segments_yaml.write_text(BIG_GIVERS)
    deployment.drop(
        "constituents_1.csv",
        csv(
            "member_id,email,lifetime_value,email_opt_in",
            "1,ann@example.org,980.50,yes",
            "2,bob@example.org,31250,yes",
        ),
    )
    assert deployment.run()[0] == ExitCode.OK
    assert deployment.members("Big givers") == {2}

    # A spreadsheet's currency cell turns the undeclared column into text.
    deployment.drop(
        "constituents_2.csv",
        csv("member_id,email,lifetime_value,email_opt_in", '3,cy@example.org,"$1,250.00",yes'),
    )
    code, printed = deployment.run()

    assert code == ExitCode.FAILED, printed
    assert deployment.upload("constituents_2.csv")["status"] == "applied"
    assert column_type(deployment, "lifetime_value") == "VARCHAR"
    assert "segment 'Big givers'" in printed
    assert "attribute 'lifetime_value' holds text (VARCHAR)" in printed
    assert "attributes: {lifetime_value: number}" in printed
    # never a text comparison: '980.50' > '25000' would have let ann in
    assert deployment.members("Big givers") == {2}
    assert deployment.members("Emailable") == {1, 2, 3}
    emailable = deployment.data.exports / "crm" / "Emailable" / "members.csv"
    assert len(pl.read_csv(emailable)) == 3  # the other segments still export

    deployment.data.segments_yaml.write_text("attributes: {lifetime_value: number}\n" + BIG_GIVERS)
    deployment.drop(
        "constituents_3.csv",
        csv("member_id,email,lifetime_value", '4,dee@example.org,"$26,000"'),
    )
    code, printed = deployment.run()

    assert code == ExitCode.OK, printed
    assert column_type(deployment, "lifetime_value") == "DOUBLE"
    assert attribute(deployment, "lifetime_value") == {
        "ann@example.org": 980.5,
        "bob@example.org": 31250.0,
        "cy@example.org": 1250.0,
        "dee@example.org": 26000.0,
    }
    assert deployment.members("Big givers") == {2, 4}


def test_a_text_date_compared_as_a_date_fails_that_rule(deployment: Deployment):
    deployment.data.segments_yaml.write_text(
        "segments:\n  - name: Early donors\n    all:\n"
        "      - {attribute: first_gift_date, op: lt, value: 2010-01-01}\n"
    )
    deployment.drop("constituents.csv", csv("email,first_gift_date", "ann@example.org,03/15/2012"))

    code, printed = deployment.run()

    assert code == ExitCode.FAILED
    assert "cannot be compared as a date" in printed
    assert "attributes: {first_gift_date: date}" in printed
    assert deployment.members("Early donors") == set()


def test_an_interest_no_upload_created_yet_matches_nobody_and_says_so(deployment: Deployment):
    deployment.data.segments_yaml.write_text(
        "segments:\n"
        "  - name: Gardeners\n    all:\n      - {interest: Gardening, status: opted_in}\n"
        "  - name: Emailable\n    all:\n      - {attribute: email_opt_in, op: eq, value: true}\n"
    )
    deployment.drop("constituents.csv", csv("email,email_opt_in", "ann@example.org,yes"))

    code, printed = deployment.run()

    assert code == ExitCode.OK, printed
    assert deployment.members("Gardeners") == set()
    assert deployment.members("Emailable") == {1}
    with deployment.instance() as instance:
        records = instance.fetch_materializations(dg.AssetKey("segments"), limit=1).records
    note = records[0].asset_materialization.metadata["rule note: Gardeners"].value
    assert "interest 'Gardening' does not exist yet" in note
    assert "matches nobody" in note

    deployment.drop(
        "segmentation.csv", csv("email,interest_name,opt", "ann@example.org,Gardening,in")
    )
    assert deployment.run()[0] == ExitCode.OK
    assert deployment.members("Gardeners") == {1}


def test_one_email_rule_for_every_kind(deployment: Deployment):
    deployment.drop(
        "constituents_1.csv",
        csv(
            "email,first_name",
            "fay@example.org;,Fay",
            '"rae@example.org,",Rae',
            "\u00a0Zed@Example.ORG\u200b,Zed",
            "a..b@example.org,Dots",
            ".lead@example.org,Lead",
            f"{'l' * 65}@example.org,Long",
            "josé@bücher.de,José",
        ),
    )
    deployment.drop("constituents_2.csv", csv("email,first_name", "fay@example.org,Fay"))
    deployment.drop(
        "events.csv",
        csv("email,event,timestamp", "zed@example.org;,page_view,2026-11-05T21:30Z"),
    )
    deployment.drop(
        "manual_segment.csv",
        csv("segment,email", "Staff,fay@example.org;", "Staff,ZED@example.org"),
    )

    deployment.run()

    assert reasons(deployment, "constituents_1.csv") == {
        2: "invalid email",
        3: "invalid email",
        5: "invalid email",
        6: "invalid email",
        7: "invalid email",
    }
    people = deployment.query("SELECT email FROM constituents ORDER BY email")["email"].to_list()
    assert people == ["fay@example.org", "josé@bücher.de", "zed@example.org"]
    assert reasons(deployment, "events.csv") == {2: "invalid email"}
    assert reasons(deployment, "manual_segment.csv") == {2: "invalid email"}


def test_a_nul_byte_after_an_email_is_never_stored(deployment: Deployment):
    deployment.drop("constituents.csv", b"email,first_name\nann@example.org\x00,Ann\n")
    deployment.run()
    stored = deployment.query("SELECT email FROM constituents")["email"].to_list()
    assert stored == []


def test_phones_follow_nanp_and_their_country(deployment: Deployment):
    deployment.drop(
        "constituents.csv",
        csv(
            "email,phone",
            "a@example.org,0123456789",
            "b@example.org,(212) 155-0187",
            "c@example.org,+44 20 7946 0958",
            "d@example.org,+44 20 7946 095",
            "e@example.org,212-555-0187",
            "f@example.org,+33 6 12 34 56 78",
        ),
    )

    code, printed = deployment.run()

    assert code == ExitCode.OK, printed
    assert reasons(deployment, "constituents.csv") == {
        2: normalize.PHONE_NOT_NANP,
        3: normalize.PHONE_NOT_NANP,
        5: normalize.PHONE_NOT_OF_COUNTRY,
    }
    phones = deployment.query("SELECT email, phone FROM constituents ORDER BY email")
    assert phones.rows() == [
        ("c@example.org", "+442079460958"),
        ("e@example.org", "+12125550187"),
        ("f@example.org", "+33612345678"),
    ]


def test_every_iso_8601_timestamp_form_is_accepted_in_utc(deployment: Deployment):
    deployment.drop("constituents.csv", csv("member_id,email", "1,ann@example.org"))
    deployment.drop(
        "events.csv",
        csv(
            "member_id,event,timestamp,n",
            "1,rsvp,2026-11-05T21:30Z,1",
            "1,rsvp,2026-11-05T21:30+01:00,2",
            "1,rsvp,2026-11-05T21:30:00+0100,3",
            "1,rsvp,2026-11-05T21:30-05,4",
            "1,rsvp,2026-11-05 21:30:15.250,5",
            "1,rsvp,2026-11-05T21:30:15.123456Z,6",
            "1,rsvp,2026-11-05,7",
            "1,rsvp,11/05/2026 9:30 PM,8",
        ),
    )

    code, printed = deployment.run()

    assert code == ExitCode.OK, printed
    stored = deployment.query("SELECT properties['n'] AS n, \"timestamp\" FROM events ORDER BY n")
    assert stored.rows() == [
        ("1", datetime(2026, 11, 5, 21, 30)),
        ("2", datetime(2026, 11, 5, 20, 30)),
        ("3", datetime(2026, 11, 5, 20, 30)),
        ("4", datetime(2026, 11, 6, 2, 30)),
        ("5", datetime(2026, 11, 5, 21, 30, 15, 250000)),
        ("6", datetime(2026, 11, 5, 21, 30, 15, 123456)),
        ("7", datetime(2026, 11, 5)),
    ]
    reason = reasons(deployment, "events.csv")[9]
    assert reason.startswith("invalid timestamp; use ISO 8601 / RFC 3339")
    assert "2026-11-05T21:30+01" in reason and "2026-11-05T21:30:00-05:00" in reason


def test_a_bad_attributes_section_rejects_constituent_files_saying_what_to_fix(
    deployment: Deployment,
):
    deployment.data.segments_yaml.write_text("attributes: {lifetime_value: money}\n")
    deployment.drop("constituents.csv", csv("email,lifetime_value", "ann@example.org,5"))
    code, _ = deployment.run()
    assert code == ExitCode.REJECTED
    assert deployment.upload("constituents.csv")["error"] == (
        "segments.yaml: attribute 'lifetime_value': type must be one of "
        "number, date, timestamp, boolean, text, not 'money'"
    )


def test_subscriber_segments_belong_to_their_domain(deployment: Deployment):
    deployment.data.segments_yaml.write_text(
        # channel none: a list of ids contacts nobody, so no consent is needed to export it.
        "destinations:\n  - {name: lists, format: csv, key: member_id, channel: none, "
        "segments: [VIP]}\n"
    )
    deployment.drop(
        "constituents.csv",
        csv("member_id,phone,sms_opt_in", "1,2025550101,yes", "2,2025550102,yes"),
    )
    deployment.drop("shop_subscriber_segment_20261104.csv", csv("2025550101,VIP", "2025550102,VIP"))
    deployment.drop("brand_subscriber_segment_20261104.csv", csv("2025550102,VIP"))
    assert deployment.run()[0] == ExitCode.OK
    # the second brand's list arrives later and replaces only its own VIP
    deployment.drop("brand_subscriber_segment_20261105.csv", csv("2025550101,VIP"))

    code, printed = deployment.run()

    assert code == ExitCode.OK, printed
    vip = deployment.query(
        "SELECT s.domain, list(m.cons_id ORDER BY m.cons_id) AS members "
        "FROM segments s JOIN segment_members m USING (segment_id) "
        "WHERE s.name = 'VIP' AND s.kind = 'subscriber' GROUP BY s.domain ORDER BY s.domain"
    )
    assert vip.rows() == [("brand", [1]), ("shop", [1, 2])]
    assert "VIP (brand)" in printed and "VIP (shop)" in printed
    for audience, members in (("shop_VIP", [1, 2]), ("brand_VIP", [1])):
        exported = pl.read_csv(deployment.data.exports / "lists" / audience / "members.csv")
        assert sorted(exported["member_id"]) == members
    with deployment.instance() as instance:
        (record,) = instance.fetch_materializations(dg.AssetKey("segments"), limit=1).records
    sizes = record.asset_materialization.metadata
    assert (sizes["size: VIP (shop)"].value, sizes["size: VIP (brand)"].value) == (2, 1)
