"""SPEC section 3, each guarantee through the real pipeline: a DuckDB file, a Dagster instance,
files in an inbox, `segpipe run`."""

import hashlib

import pytest

from segpipe.warehouse.schema import TABLES
from segpipe_tests.conftest import Deployment, csv

PEOPLE = csv(
    "member_id,email,phone,first_name,email_opt_in,sms_opt_in",
    "1,ana@example.org,202-555-0101,Ana,yes,yes",
    "2,ben@example.org,(202) 555-0102,Ben,yes,no",
)
OPT_INS = csv(
    "email,interest_name,opt",
    "ana@example.org,Weekly Digest,in",
    "ben@example.org,Weekly Digest,out",
)


def snapshot(deployment: Deployment) -> dict[str, list]:
    """Every public table's rows, in a stable order."""
    found = deployment.queries(
        {table: f'SELECT * FROM "{table}" ORDER BY ALL' for table in TABLES if table != "uploads"}
    )
    return {table: rows.rows() for table, rows in found.items()}


def test_every_file_is_archived_unchanged_first(deployment: Deployment):
    good = deployment.drop("constituents_a.csv", PEOPLE)
    bad = deployment.drop(
        "segmentation_latin1.csv", "email,interest_name,opt\nJosé,x,in\n".encode("latin-1")
    )
    sent = {good.name: good.read_bytes(), bad.name: bad.read_bytes()}

    code, _ = deployment.run()

    assert code == 2
    assert list(deployment.data.inbox.iterdir()) == []
    for name, payload in sent.items():
        row = deployment.upload(name)
        archived = deployment.data.archive / row["upload_id"] / name
        assert archived.read_bytes() == payload
        assert row["sha256"] == hashlib.sha256(payload).hexdigest()


def test_duplicate_bytes_are_recorded_and_change_nothing(deployment: Deployment):
    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.drop("segmentation_a.csv", OPT_INS)
    deployment.run()
    before = snapshot(deployment)

    deployment.drop("segmentation_resent.csv", OPT_INS)
    code, printed = deployment.run()

    assert code == 0, printed
    resent = deployment.upload("segmentation_resent.csv")
    assert resent["status"] == "duplicate"
    assert resent["duplicate_of"] == deployment.upload("segmentation_a.csv")["upload_id"]
    assert snapshot(deployment) == before


@pytest.mark.parametrize(("people_first", "applied"), [(True, 2), (False, 0)])
def test_files_apply_in_arrival_order_not_name_order(deployment: Deployment, people_first, applied):
    # By name the segmentation file comes first; by modification time it may come second.
    deployment.drop("segmentation_a.csv", OPT_INS, arrival=10 if people_first else 0)
    deployment.drop("constituents_z.csv", PEOPLE, arrival=0 if people_first else 10)

    deployment.run()

    segmentation = deployment.upload("segmentation_a.csv")
    assert segmentation["rows_applied"] == applied
    assert segmentation["rows_ignored"] == 2 - applied


def test_a_failure_while_applying_leaves_every_table_unchanged(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
):
    from segpipe.warehouse import interests

    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.run()
    before = snapshot(deployment)
    real_set_statuses, real_batch = interests.set_statuses, interests.set_statuses_batch

    def fail_half_way(real):
        def failing(con, source, upload):
            real(con, source, upload)  # interests, groups, memberships, history written
            raise RuntimeError("injected failure after the writes")

        return failing

    # Applied in a batch first (batch.py), then, when the batch fails, on its own.
    monkeypatch.setattr(interests, "set_statuses_batch", fail_half_way(real_batch))
    monkeypatch.setattr(interests, "set_statuses", fail_half_way(real_set_statuses))
    deployment.drop("segmentation_a.csv", OPT_INS)
    code, printed = deployment.run()

    assert code == 1
    assert "injected failure after the writes" in printed
    assert snapshot(deployment) == before
    assert deployment.query(
        "SELECT * FROM uploads WHERE file_name = 'segmentation_a.csv'"
    ).is_empty()

    monkeypatch.setattr(interests, "set_statuses", real_set_statuses)
    monkeypatch.setattr(interests, "set_statuses_batch", real_batch)
    code, printed = deployment.run()  # the archived, unsettled file is picked up again

    assert code == 0, printed
    assert deployment.upload("segmentation_a.csv")["rows_applied"] == 2


def test_a_batch_that_fails_is_applied_one_file_at_a_time(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
):
    from segpipe.warehouse import interests

    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.run()
    real_batch = interests.set_statuses_batch

    def fail_half_way(con, source, batch):
        real_batch(con, source, batch)
        raise RuntimeError("injected failure after the writes")

    monkeypatch.setattr(interests, "set_statuses_batch", fail_half_way)
    deployment.drop("segmentation_a.csv", OPT_INS)
    deployment.drop(
        "segmentation_b.csv", csv("email,interest_name,opt", "ben@example.org,Weekly Digest,in")
    )
    code, printed = deployment.run()

    assert code == 0, printed
    assert deployment.upload("segmentation_a.csv")["rows_applied"] == 2
    assert deployment.upload("segmentation_b.csv")["rows_applied"] == 1
    history = deployment.query(
        "SELECT u.file_name, h.change FROM membership_history h JOIN uploads u USING (upload_id) "
        "JOIN constituents c USING (cons_id) WHERE c.first_name = 'Ben' ORDER BY h.at"
    )
    assert history.rows() == [
        ("segmentation_a.csv", "opted_out"),
        ("segmentation_b.csv", "opted_in"),
    ]


def test_whole_file_problems_reject_only_that_file(deployment: Deployment):
    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.drop("donors_export.csv", "donor,amount\nana,5\n")
    deployment.drop("segmentation_empty.csv", "")
    deployment.drop("segmentation_header_only.csv", "email,interest_name,opt\n")
    deployment.drop("segmentation_no_opt.csv", "email,interest_name\nana@example.org,Digest\n")
    deployment.drop("segmentation_binary.csv", b"email,interest_name,opt\n\x89PNG\x00\xff,x,in\n")
    deployment.drop("segmentation_good.csv", OPT_INS)

    code, printed = deployment.run()

    assert code == 2
    expected = {
        "donors_export.csv": "file name matches no upload kind; accepted patterns: constituents",
        "segmentation_empty.csv": "file is empty",
        "segmentation_header_only.csv": "file has no data rows",
        "segmentation_no_opt.csv": "missing required column: one of opt, opt_in",
        "segmentation_binary.csv": "not valid UTF-8 (line 2",
    }
    for name, problem in expected.items():
        row = deployment.upload(name)
        assert row["status"] == "rejected"
        assert row["error"].startswith(problem)
        assert name in printed and problem in printed
        assert deployment.errors(name)["reason"][0].startswith(problem)
    assert deployment.upload("constituents_a.csv")["status"] == "applied"
    assert deployment.upload("segmentation_good.csv")["rows_applied"] == 2


def test_rows_in_equal_applied_rejected_ignored_and_superseded(deployment: Deployment):
    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.drop(
        "segmentation_mixed.csv",
        csv(
            "email,interest_name,opt",
            "ana@example.org,Digest,in",  # superseded by line 6
            "nobody@example.org,Digest,in",  # ignored
            "not an email,Digest,in",  # rejected
            "ben@example.org,Digest,maybe",  # rejected
            "ana@example.org,Digest,out",  # applied
            "ben@example.org,Digest,in",  # applied
        ),
    )

    deployment.run()

    row = deployment.upload("segmentation_mixed.csv")
    assert (row["rows_in"], row["rows_applied"], row["rows_rejected"]) == (6, 2, 2)
    assert (row["rows_ignored"], row["rows_superseded"]) == (1, 1)
    errors = deployment.errors("segmentation_mixed.csv")
    assert errors.select("line", "outcome", "reason").rows() == [
        ("3", "ignored", "constituent not found: no one has that email"),
        ("4", "rejected", "invalid email"),
        (
            "5",
            "rejected",
            "unrecognized opt value; use in/out, yes/no, y/n, true/false, 1/0, add/remove "
            "or subscribe/unsubscribe",
        ),
    ]
    assert errors["opt"].to_list() == ["in", "in", "maybe"]  # the row as received


def test_bytes_rejected_under_a_wrong_name_apply_when_sent_again_under_a_right_one(
    deployment: Deployment,
):
    deployment.drop("people.csv", PEOPLE)
    deployment.run()
    deployment.drop("constituents_people.csv", PEOPLE)

    code, printed = deployment.run()

    assert code == 0, printed
    assert deployment.upload("people.csv")["status"] == "rejected"
    assert deployment.upload("constituents_people.csv")["status"] == "applied"


def test_new_people_never_take_an_id_the_same_file_gives_someone_else(deployment: Deployment):
    """Member ids are the file's text; cons_ids are segpipe's, given in line order, never twice."""
    deployment.drop("constituents_first.csv", csv("member_id,email", "1,one@example.org"))
    deployment.drop(
        "constituents_second.csv",
        csv("member_id,email", ",new@example.org", "2,two@example.org"),
    )

    deployment.run()

    people = deployment.query("SELECT cons_id, member_id, email FROM constituents ORDER BY cons_id")
    assert people["cons_id"].is_unique().all()
    assert people.rows() == [
        (1, "1", "one@example.org"),
        (2, None, "new@example.org"),
        (3, "2", "two@example.org"),
    ]


def test_a_blank_attribute_column_keeps_the_column_and_its_type(deployment: Deployment):
    deployment.drop("constituents_a.csv", csv("email,lifetime_value", "a@example.org,25000"))
    deployment.drop("constituents_b.csv", csv("email,lifetime_value", "b@example.org,"))

    deployment.run()

    kind = deployment.query(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'constituents' AND column_name = 'lifetime_value'"
    )
    assert kind.item() == "BIGINT"
    values = deployment.query("SELECT email, lifetime_value FROM constituents ORDER BY email")
    assert values.rows() == [("a@example.org", 25000), ("b@example.org", None)]


def test_a_ragged_row_is_rejected_alone_with_its_line(deployment: Deployment):
    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.drop(
        "segmentation_ragged.csv",
        csv(
            "email,interest_name,opt",
            "ana@example.org,Digest,in",
            "ben@example.org,Digest,in,surplus",
        ),
    )

    deployment.run()

    row = deployment.upload("segmentation_ragged.csv")
    assert (row["status"], row["rows_applied"], row["rows_rejected"]) == ("applied", 1, 1)
    errors = deployment.errors("segmentation_ragged.csv")
    assert errors.select("line", "reason").rows() == [("3", "line has 4 fields, the header has 3")]


def test_files_arriving_in_the_same_instant_apply_in_name_order(deployment: Deployment):
    # Whole-second modification times (SFTP, SMB) make ties common; then the name decides.
    deployment.drop(
        "Segmentation_B.csv",
        csv("email,interest_name,opt", "ana@example.org,Digest,out"),
        arrival=5,
    )
    deployment.drop(
        "segmentation_a.csv", csv("email,interest_name,opt", "ana@example.org,Digest,in"), arrival=5
    )
    deployment.drop("constituents_a.csv", PEOPLE, arrival=0)

    deployment.run()

    status = deployment.query("SELECT status FROM interest_memberships").item()
    assert status == "opted_in"  # 'Segmentation_B.csv' < 'segmentation_a.csv': a applied last
