"""The suppression list (`suppression*.csv`) through `segpipe run`: exports, later opt-ins,
people who arrive after their suppression, and lifting one."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from segpipe.cli import main
from segpipe_tests.conftest import Deployment, copy_of, csv, deployment_at

SEGMENTS_YAML = """
destinations:
  - {name: newsletter, key: email, segments: [Friends]}
  - {name: texts, key: phone, segments: [Friends]}
"""
PEOPLE = csv(
    "member_id,email,phone,first_name,email_opt_in,sms_opt_in",
    "1,ann@example.org,415-555-0101,Ann,yes,yes",
    "2,bob@example.org,415-555-0102,Bob,yes,yes",
    "3,cy@example.org,415-555-0103,Cy,yes,yes",
)
# Mailchimp's and Klaviyo's export headers (aliases) and a stray space, as exports have them.
SUPPRESSIONS = csv(
    "Email Address,Phone Number,Channel,Reason",
    "ANN@example.org ,,email,complaint",
    ",(415) 555-0109,,carrier opt-out",
    "bob@example.org,,fax,typo",
)


def _keys(deployment: Deployment, destination: str, name: str = "members") -> list[str]:
    path = deployment.data.exports / destination / "Friends" / f"{name}.csv"
    frame = pl.read_csv(path, infer_schema=False)
    return sorted(frame[frame.columns[0]].to_list())


def _friends(deployment: Deployment, day: int, *member_ids: int) -> None:
    rows = [f"Friends,{m}" for m in member_ids]
    deployment.drop(f"manual_segment_2026-11-{day:02d}.csv", csv("segment,member_id", *rows))


@pytest.fixture(scope="module")
def applied_suppressions(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """People, a suppression file and a list, through one run: once per module."""
    with deployment_at(tmp_path_factory.mktemp("suppressed") / "deployment") as deployment:
        deployment.data.segments_yaml.write_text(SEGMENTS_YAML)
        deployment.drop("constituents_2026-11-01.csv", PEOPLE)
        deployment.drop("suppression_2026-11-02_complaints.csv", SUPPRESSIONS)
        _friends(deployment, 3, 1, 2, 3)
        code, printed = deployment.run()
        assert code == 0, printed
    return deployment


@pytest.fixture
def suppressed(applied_suppressions: Deployment, tmp_path, monkeypatch) -> Deployment:
    """A copy of `applied_suppressions` of the test's own (warehouse, files, Dagster home)."""
    return copy_of(applied_suppressions, tmp_path / "deployment", monkeypatch)


def test_a_suppressed_email_is_never_exported_on_email(suppressed: Deployment):
    assert _keys(suppressed, "newsletter") == ["bob@example.org", "cy@example.org"]
    # Ann's suppression is on email only: her texts still go.
    assert _keys(suppressed, "texts") == ["+14155550101", "+14155550102", "+14155550103"]
    upload = suppressed.upload("suppression_2026-11-02_complaints.csv")
    assert (upload["kind"], upload["rows_applied"], upload["rows_rejected"]) == (
        "suppression", 2, 1,
    )  # fmt: skip
    errors = suppressed.errors("suppression_2026-11-02_complaints.csv")
    assert errors.select("line", "reason").rows() == [
        ("4", "unrecognized channel; use email, sms, all")
    ]
    rows = suppressed.query(
        "SELECT identifier_kind, identifier, channel, reason FROM suppressions ORDER BY 1"
    )
    assert rows.rows() == [
        ("email", "ann@example.org", "email", "complaint"),
        ("phone", "+14155550109", "all", "carrier opt-out"),
    ]


def test_a_later_opt_in_applies_but_the_suppression_holds(suppressed: Deployment):
    suppressed.drop(
        "constituents_2026-11-04_resubscribe.csv",
        csv("email,email_opt_in", "ann@example.org,yes", "cy@example.org,yes"),
    )
    code, printed = suppressed.run()
    assert code == 0, printed
    upload = suppressed.upload("constituents_2026-11-04_resubscribe.csv")
    assert (upload["rows_in"], upload["rows_applied"], upload["rows_rejected"]) == (2, 2, 0)
    opted = suppressed.query("SELECT email_opt_in FROM constituents WHERE member_id = '1'")
    assert opted.item() is True
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    errors = suppressed.errors("constituents_2026-11-04_resubscribe.csv")
    assert errors.select("line", "outcome", "reason").rows() == [
        ("2", "applied", f"suppressed since {today}: complaint")
    ]
    assert _keys(suppressed, "newsletter") == ["bob@example.org", "cy@example.org"]


def test_a_person_arriving_after_their_suppression_is_suppressed(suppressed: Deployment):
    suppressed.drop(
        "constituents_2026-11-04_new.csv",
        csv("member_id,email,phone,email_opt_in,sms_opt_in", "9,dan@example.org,4155550109,y,y"),
    )
    _friends(suppressed, 5, 9)
    code, printed = suppressed.run()
    assert code == 0, printed
    # Suppressed on all channels by his phone, before anyone had it.
    assert "dan@example.org" not in _keys(suppressed, "newsletter")
    assert "+14155550109" not in _keys(suppressed, "texts")
    assert suppressed.errors("constituents_2026-11-04_new.csv")["reason"].to_list() == [
        f"suppressed since {datetime.now(UTC):%Y-%m-%d}: carrier opt-out"
    ]
    latest = suppressed.query(
        "SELECT destination, skipped_no_consent FROM syncs "
        'QUALIFY row_number() OVER (PARTITION BY destination ORDER BY "at" DESC) = 1 ORDER BY 1'
    )
    assert latest.rows() == [("newsletter", 2), ("texts", 1)]


def test_removing_a_suppression_lets_the_person_back_and_keeps_its_history(
    suppressed: Deployment,
):
    suppressed.drop(
        "suppression_2026-11-05_lifted.csv",
        csv("email,channel,action,reason", "ann@example.org,all,remove,asked to return"),
    )
    code, printed = suppressed.run()
    assert code == 0, printed
    assert _keys(suppressed, "newsletter") == [
        "ann@example.org", "bob@example.org", "cy@example.org",
    ]  # fmt: skip
    assert _keys(suppressed, "newsletter", "adds") == ["ann@example.org"]
    assert (
        suppressed.query("SELECT count(*) FROM suppressions WHERE identifier LIKE 'ann%'").item()
        == 0
    )
    history = suppressed.query(
        "SELECT identifier, channel, action, reason FROM suppression_history "
        "WHERE identifier = 'ann@example.org' ORDER BY \"at\""
    )
    assert history.rows() == [
        ("ann@example.org", "email", "add", "complaint"),
        ("ann@example.org", "all", "remove", "asked to return"),
    ]


def test_a_suppression_file_without_an_identifier_column_is_rejected(deployment: Deployment):
    deployment.drop("Suppression_list.csv", csv("name,reason", "Ann,complaint"))
    code, printed = deployment.run()
    assert code == 2
    upload = deployment.upload("Suppression_list.csv")
    assert upload["error"] == "missing required column: one of email, phone, member_id, cons_id"


def _undo(deployment: Deployment, upload_id: str, capsys: pytest.CaptureFixture):
    """`segpipe undo UPLOAD_ID`: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(["undo", "--data-dir", str(deployment.data.root), upload_id])
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def test_undo_puts_the_suppression_list_back(suppressed: Deployment, capsys: pytest.CaptureFixture):
    before = suppressed.query("SELECT * FROM suppressions ORDER BY ALL")
    name = "suppression_2026-11-05_more.csv"
    suppressed.drop(
        name,
        csv(
            "email,phone,channel,action,reason",
            "bob@example.org,,email,add,bounced",
            "ann@example.org,,all,remove,asked to return",
            ",(415) 555-0109,all,add,again",  # already in force: changes nothing
        ),
    )
    assert suppressed.run()[0] == 0
    assert _keys(suppressed, "newsletter") == ["ann@example.org", "cy@example.org"]
    upload_id = suppressed.upload(name)["upload_id"]

    code, out, _ = _undo(suppressed, upload_id, capsys)

    assert code == 0
    assert out.splitlines()[0] == (
        f"undid {upload_id} ({name}): 1 suppressions row(s) restored; 1 suppressions row(s) "
        f"removed; 0 membership change(s) recorded as undo:{upload_id}; 2 suppression change(s) "
        "in suppression_history"
    )
    assert suppressed.query("SELECT * FROM suppressions ORDER BY ALL").equals(before)
    history = suppressed.query(
        "SELECT identifier, channel, action, reason FROM suppression_history "
        "WHERE upload_id = ? ORDER BY identifier",
        [f"undo:{upload_id}"],
    )
    assert history.rows() == [
        ("ann@example.org", "email", "add", "complaint"),
        ("bob@example.org", "email", "remove", None),
    ]
    # The next run's exports follow: Ann suppressed again, Bob back.
    assert suppressed.run()[0] == 0
    assert _keys(suppressed, "newsletter") == ["bob@example.org", "cy@example.org"]


def test_undo_of_a_suppression_file_waits_for_a_later_one_on_the_same_identifier(
    suppressed: Deployment, capsys: pytest.CaptureFixture
):
    suppressed.drop("suppression_2026-11-05_a.csv", csv("email,channel", "bob@example.org,email"))
    suppressed.drop("suppression_2026-11-06_b.csv", csv("email,action", "bob@example.org,remove"))
    assert suppressed.run()[0] == 0
    first = suppressed.upload("suppression_2026-11-05_a.csv")["upload_id"]
    later = suppressed.upload("suppression_2026-11-06_b.csv")["upload_id"]
    before = suppressed.query("SELECT * FROM suppressions ORDER BY ALL")

    code, _, err = _undo(suppressed, first, capsys)

    assert code == 1
    assert f"later uploads changed the same rows: {later} (suppression_2026-11-06_b.csv)" in err
    assert suppressed.query("SELECT * FROM suppressions ORDER BY ALL").equals(before)
    assert suppressed.upload("suppression_2026-11-05_a.csv")["status"] == "applied"


def test_undo_refuses_a_suppression_file_applied_before_its_changes_were_kept(
    suppressed: Deployment, capsys: pytest.CaptureFixture
):
    """Warehouses from before suppression files kept before-images: undo had nothing to put
    back and said it undid the file. The images are deleted here, as those files have none."""
    name = "suppression_2026-11-02_complaints.csv"
    upload_id = suppressed.upload(name)["upload_id"]
    suppressed.query(
        "DELETE FROM upload_before_suppressions WHERE _undo_upload_id = ?", [upload_id]
    )
    before = suppressed.query("SELECT * FROM suppressions ORDER BY ALL")

    code, out, err = _undo(suppressed, upload_id, capsys)

    assert (code, out) == (1, "")
    assert err == (
        f"segpipe: cannot undo: upload {upload_id} ({name}) has no record of what it changed "
        "(applied before segpipe kept one, or it changed nothing), so undo cannot put anything "
        "back; correct it with a new file instead\n"
    )
    assert suppressed.query("SELECT * FROM suppressions ORDER BY ALL").equals(before)
    assert suppressed.upload(name)["status"] == "applied"


def test_a_bad_phone_is_refused_with_the_reason_a_constituent_file_gives():
    """One phone rule, one set of reasons (normalize.phone_problem) for every kind."""
    from segpipe.ingest import normalize
    from segpipe.ingest.reader import LINE
    from segpipe.kinds import suppression

    raw = pl.DataFrame({LINE: [2, 3, 4], "phone": ["012-345-6789", "call me", "(415) 555-0109"]})

    checked = suppression.validate("suppression_2026-11-05.csv", raw)

    assert checked["_reason"].to_list() == [
        normalize.PHONE_NOT_NANP,
        normalize.PHONE_NOT_A_NUMBER,
        None,
    ]
