"""The README's run command: the sample deployment through `segpipe run`, and what it leaves."""

import re
from datetime import datetime

import dagster as dg
import polars as pl
import pytest
from dagster._serdes import serialize_value

from segpipe.warehouse.connection import connect
from segpipe.warehouse.segments import members_of, segment_sizes
from segpipe.warehouse.sql import frame
from segpipe_tests.conftest import SAMPLE, Deployment, deployment_at, with_sample

# The sample's events are from the week before; `make demo` runs it as of the same instant.
SAMPLE_AS_OF = datetime(2026, 11, 7)
# Distinct masked emails and phones the sample's run leaves in the event log (previews, reasons).
MASKED_FORMS = 15  # 20 today


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Deployment, int, str]:
    """One run of the whole sample, shared by the tests below."""
    with deployment_at(tmp_path_factory.mktemp("sample") / "deployment") as deployment:
        code, printed = with_sample(deployment).run(as_of=SAMPLE_AS_OF)
        yield deployment, code, printed


REJECTED = {
    "segmentation_2026-11-06_missing_opt_column.csv": "missing required column: one of opt, opt_in",
    "sirendenim_subscriber_segment_20261101.csv": "stale delivery: 2026-11-01 is older than",
    "sirenoutlet_subscriber_segment_20261105.csv": "file mixes phone numbers and emails",
}


def test_run_prints_a_summary_and_exits_2_for_the_bad_files(ran):
    deployment, code, printed = ran
    assert code == 2, printed
    for file_name, problem in REJECTED.items():
        assert re.search(rf"{re.escape(file_name)}\s+rejected\s+{re.escape(problem)}", printed)
    assert re.search(
        r"\[1/\d+\] constituents_2026-11-01\.csv\s+applied\s+in 16  applied 13  rejected 3",
        printed,
    )
    assert "Monthly Newsletter Opt-In" in printed
    statuses = dict(deployment.query("SELECT file_name, status FROM uploads").iter_rows())
    assert {name for name, status in statuses.items() if status != "applied"} == set(REJECTED)


def test_lists_hold_their_manual_edits_and_latest_deliveries(ran):
    deployment, _, _ = ran
    sizes = dict(
        deployment.query(
            "SELECT s.name, count(m.cons_id) FROM segments s "
            "LEFT JOIN segment_members m USING (segment_id) "
            "WHERE s.kind IN ('manual', 'subscriber') GROUP BY s.name"
        ).iter_rows()
    )
    # VIP Shoppers is the 2026-11-04 delivery's two files together, not the 11-03 one.
    assert sizes == {
        "Board Prospects": 3,
        "Gala Volunteers": 4,  # two of them added by Customer.io ids (segment,id)
        "VIP Shoppers": 3,
        "Cart Abandoners": 2,
        "Winter Sale": 1,
        "Outlet Newsletter": 2,
    }


def test_people_are_created_updated_and_normalized(ran):
    deployment, _, _ = ran
    people = deployment.query("SELECT * FROM constituents ORDER BY cons_id")
    assert people.height == 14  # 13 from the first file, Mia Thompson-Reyes from the update
    tom = people.filter(pl.col("email") == "tom.becker@example.org").row(0, named=True)
    # The update renamed him and opted him in; its blank lifetime value kept the old one.
    assert (tom["first_name"], tom["email_opt_in"], tom["lifetime_value"]) == (
        "Thomas",
        True,
        150.0,
    )
    maria = people.filter(pl.col("member_id") == "M-1001").row(0, named=True)
    assert (maria["cons_id"], maria["phone"]) == (1, "+14155550134")
    # Luminate's headers (MEMBER_ID, PRIMARY_EMAIL, FIRST_NAME) and Customer.io's text ids.
    olivia = people.filter(pl.col("email") == "olivia.brown@example.com").row(0, named=True)
    assert (olivia["member_id"], olivia["first_name"]) == ("cus_8f2a01", "Olivia")
    mia = people.filter(pl.col("email") == "mia.thompson@example.com")
    assert mia["last_name"].to_list() == ["Thompson-Reyes"]  # the later row of the file won
    assert mia["cons_id"].to_list() == [14]  # assigned after the first file's 13 people
    assert mia["member_id"].to_list() == [None]
    types = dict(
        deployment.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'constituents'"
        ).rows()
    )
    assert (types["lifetime_value"], types["first_gift_date"], types["state"]) == (
        "DOUBLE",
        "DATE",
        "VARCHAR",
    )


def test_interests_come_from_names_ids_and_the_cross_reference(ran):
    deployment, _, _ = ran
    interests = dict(deployment.query("SELECT name, category FROM interests").rows())
    assert interests["Planned Giving Updates"] == "Uploaded"  # created by a segmentation upload
    groups = deployment.query(
        "SELECT g.name, s.kind FROM interest_groups g JOIN segments s ON s.segment_id = g.group_id "
        "WHERE g.name LIKE 'Planned Giving Updates%' ORDER BY 1"
    ).rows()
    assert groups == [
        ("Planned Giving Updates Opt-In", "interest_group"),
        ("Planned Giving Updates Opt-Out", "interest_group"),
    ]
    status = dict(
        deployment.query(
            """SELECT c.email || ' / ' || i.name, m.status FROM interest_memberships m
           JOIN constituents c USING (cons_id) JOIN interests i USING (interest_id)"""
        ).rows()
    )
    assert status["maria.alvarez@example.org / Monthly Newsletter"] == "opted_in"  # by name
    assert status["d.nguyen@example.com / Monthly Newsletter"] == "opted_out"  # last row won
    assert status["maria.alvarez@example.org / Advocacy Alerts"] == "opted_in"  # foreign code
    assert (
        status["lena.schmidt@example.de / Volunteer Opportunities"] == "opted_in"
    )  # default source
    assert status["tom.becker@example.org / Monthly Newsletter"] == "opted_in"  # by id, later file
    assert status["j.okafor@example.net / Gala 2026 Invitations"] == "opted_out"
    members = dict(
        deployment.query(
            "SELECT s.name, count(*) FROM segment_members m JOIN segments s USING (segment_id) "
            "GROUP BY 1"
        ).rows()
    )
    assert members["Monthly Newsletter Opt-In"] == 7
    assert members["Monthly Newsletter Opt-Out"] == 1


def test_counts_add_up_for_every_upload(ran):
    deployment, _, _ = ran
    uploads = deployment.query("SELECT * FROM uploads")
    assert uploads.height == len(list((SAMPLE / "inbox").iterdir()))
    for row in uploads.iter_rows(named=True):
        parts = row["rows_applied"] + row["rows_rejected"] + row["rows_ignored"]
        assert row["rows_in"] == parts + row["rows_superseded"], row["file_name"]


def _sample_personal_values() -> set[str]:
    """Every email and phone number in the sample's files, as written and as normalized."""
    found: set[str] = set()
    for path in (SAMPLE / "inbox").glob("*.csv"):
        text = path.read_text(errors="replace")
        found |= {m.lower() for m in re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text)}
        for phone in re.findall(r"\+?\d[\d ().-]{8,}\d", text):
            digits = re.sub(r"\D", "", phone)
            if len(digits) >= 10 and not re.match(r"\d{4}-\d\d-\d\d", phone):  # not a date
                found |= {phone, digits, "+" + digits, "+1" + digits[-10:]}
    return found


def test_no_raw_email_or_phone_reaches_the_dagster_event_log(ran):
    deployment, _, _ = ran
    with dg.DagsterInstance.from_config(str(deployment.data.dagster_home)) as instance:
        runs = instance.get_run_records()
        assert runs
        log = "\n".join(
            serialize_value(event)
            for run in runs
            for event in instance.all_logs(run.dagster_run.run_id)
        )
    values = _sample_personal_values()
    # The scan looks for the people the sample plants: finding none would prove nothing.
    assert len({v for v in values if "@" in v}) >= 15 and len(values) >= 60
    leaked = sorted(value for value in values if value in log)
    assert leaked == []
    # And they did reach the log, masked: previews and reasons show them in their masked forms.
    assert "m***@example.org" in log
    assert "***-***-0134" in log
    masked = re.findall(r"\b\w\*\*\*@[\w-]+\.\w+|\*\*\*-\*\*\*-\d{4}", log)
    assert len(set(masked)) >= MASKED_FORMS, sorted(set(masked))


def test_materializations_carry_counts_and_segment_sizes_as_numbers(ran):
    deployment, _, _ = ran
    with dg.DagsterInstance.from_config(str(deployment.data.dagster_home)) as instance:
        upload_id = deployment.upload("segmentation_2026-11-03_newsletter.csv")["upload_id"]
        applied = (
            instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey("applied_upload"), asset_partitions=[upload_id]
                ),
                limit=1,
            )
            .records[0]
            .asset_materialization.metadata
        )
        segments = instance.fetch_materializations(dg.AssetKey("segments"), limit=1).records[0]
    assert applied["rows_applied"].value == 10
    assert applied["rows_ignored"].value == 1
    assert applied["errors_file"].value == f"rejected/{upload_id}.errors.csv"
    assert "constituent not found: no one has that email | 1" in applied["reasons"].value
    size = segments.asset_materialization.metadata["size: Monthly Newsletter Opt-In"]
    assert isinstance(size, dg.IntMetadataValue) and size.value == 7


def test_the_fast_member_reads_agree_with_the_segment_members_view(ran):
    """Exports, rules and sizes read members through members_of and segment_sizes, which skip
    the view's join of every interest membership; they must give what the view gives."""
    deployment, _, _ = ran
    with connect(deployment.data.warehouse) as con:
        by_view = frame(con, "SELECT segment_id, cons_id FROM segment_members ORDER BY ALL")
        fast = frame(
            con,
            f"SELECT segment_id, cons_id FROM ({members_of('segments')}) ORDER BY ALL",
        )
        counted = frame(
            con,
            "SELECT s.segment_id, count(m.cons_id) AS members FROM segments s "
            "LEFT JOIN segment_members m USING (segment_id) GROUP BY ALL ORDER BY ALL",
        )
        sizes = segment_sizes(con).select("segment_id", "members").sort("segment_id")
    assert by_view.height > 0 and by_view["segment_id"].n_unique() > 5
    assert fast.equals(by_view)
    assert sizes.equals(counted)


def test_the_sample_suppression_list_keeps_people_out_of_their_channel(ran):
    deployment, _, printed = ran
    assert re.search(r"suppression_2026-11-06_complaints\.csv\s+applied\s+in 2  applied 2", printed)
    # Duc Nguyen opted in to SMS, but his number is suppressed on sms: no Attentive row.
    in_segments = (
        "SELECT count(*) FROM segment_members JOIN constituents USING (cons_id) "
        "WHERE email = 'd.nguyen@example.com'"
    )
    assert deployment.query(in_segments).item() > 0
    files = (deployment.data.exports / "attentive").glob("*.csv")
    assert "2065550178" not in "".join(p.read_text() for p in files)
    assert "skipped (no consent)" in printed
