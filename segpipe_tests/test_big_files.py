"""A big file is read and validated a slice at a time (segpipe.pipeline.CHUNK_ROWS rows) and
streamed from disk past segpipe.ingest.reader.WHOLE_FILE_BYTES. Here both limits are made tiny so
a few-line file takes that path: the outcome must be the one a whole-file read gives."""

import pytest

from segpipe import pipeline
from segpipe.ingest import reader
from segpipe_tests.conftest import Deployment, csv

PEOPLE = csv(
    "member_id,email,phone,first_name,email_opt_in,sms_opt_in",
    "1,ana@example.org,202-555-0101,Ana,yes,yes",
    "2,ben@example.org,(202) 555-0102,Ben,yes,no",
)
MIXED = csv(
    "email,interest_name,opt",
    "ana@example.org,Digest,in",  # superseded by line 6, two slices later
    "nobody@example.org,Digest,in",  # ignored
    "not an email,Digest,in",  # rejected
    "ben@example.org,Digest,maybe",  # rejected
    "ana@example.org,Digest,out",  # applied
    "ben@example.org,Digest,in",  # applied
    "ana@example.org,Sports,yes",  # applied
)


@pytest.fixture(params=["whole", "sliced"])
def sliced(request, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sliced":
        monkeypatch.setattr(pipeline, "CHUNK_ROWS", 2)
        monkeypatch.setattr(reader, "WHOLE_FILE_BYTES", 0)
    return request.param


def test_a_file_read_in_slices_has_the_outcome_of_a_whole_read(deployment: Deployment, sliced):
    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.drop("segmentation_mixed.csv", MIXED)

    deployment.run()

    row = deployment.upload("segmentation_mixed.csv")
    assert (row["rows_in"], row["rows_applied"], row["rows_rejected"]) == (7, 3, 2)
    assert (row["rows_ignored"], row["rows_superseded"]) == (1, 1)
    errors = deployment.errors("segmentation_mixed.csv")
    assert errors.select("line", "outcome", "email", "opt").rows() == [
        ("3", "ignored", "nobody@example.org", "in"),
        ("4", "rejected", "not an email", "in"),
        ("5", "rejected", "ben@example.org", "maybe"),
    ]
    statuses = deployment.query(
        "SELECT m.cons_id, i.name, m.status FROM interest_memberships m "
        "JOIN interests i USING (interest_id) ORDER BY ALL"
    )
    assert statuses.rows() == [(1, "Digest", "opted_out"), (1, "Sports", "opted_in"),
                               (2, "Digest", "opted_in")]  # fmt: skip


def test_a_missing_column_rejects_the_file_with_every_row_counted(deployment: Deployment, sliced):
    deployment.drop("segmentation_no_opt.csv", csv("email,interest_name", *["a@b.org,X"] * 5))

    deployment.run()

    row = deployment.upload("segmentation_no_opt.csv")
    assert row["status"] == "rejected"
    assert row["error"] == "missing required column: one of opt, opt_in"
    assert (row["rows_in"], row["rows_rejected"]) == (5, 5)


def test_an_unreadable_line_far_into_a_file_rejects_it(deployment: Deployment, sliced):
    lines = ["email,interest_name,opt", *["a@b.org,X,in"] * 6, 'a@b.org,"X,in']
    deployment.drop("segmentation_broken.csv", "\n".join(lines) + "\n")

    deployment.run()

    row = deployment.upload("segmentation_broken.csv")
    assert row["status"] == "rejected"
    assert row["error"].startswith("not a readable CSV file")
    assert deployment.query("SELECT count(*) FROM interest_memberships").item() == 0
