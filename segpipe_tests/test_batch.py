"""Small files applied in batches end exactly as if each had been applied alone, in turn."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segpipe import batch
from segpipe.erasure.forget import forget
from segpipe.ingest.receive import receive_inbox
from segpipe.pipeline import process_upload
from segpipe.warehouse.connection import connect
from segpipe.warehouse.sql import frame
from segpipe.warehouse.suppressions import IdentifierKind
from segpipe.warehouse.undo import UndoRefused, undo_upload
from segpipe_tests.conftest import Deployment, copy_of, csv

# Files a day of opt-ins and opt-outs brings, with every way one file's rows meet another's.
FILES = [
    (
        "segmentation_a.csv",
        csv(
            "email,interest_name,opt",
            "maria.alvarez@example.org,Monthly Newsletter,out",  # a change
            "j.okafor@example.net,Monthly Newsletter,in",  # already in: no change
            "nobody@example.org,Monthly Newsletter,in",  # names nobody: ignored
            "priya.raman@example.com,Monthly Newsletter,in",
            "priya.raman@example.com,Monthly Newsletter,out",  # supersedes the line above
            "kwame.mensah@example.org,Monthly Newsletter,in",  # erased: ignored
        ),
    ),
    (
        "segmentation_b.csv",
        csv(
            "MEMBER_ID,INTEREST_NAME,opt",
            "M-1001,Monthly Newsletter,in",  # back in: the second change of this key
            "M-1004,Monthly Newsletter,in",
            "cus_8f2a01,Monthly Newsletter,out",
        ),
    ),
    ("segmentation_c.csv", csv("CONS_ID,INTEREST_ID,opt", "1,1,out", "2,999,in", "3,1,in")),
    # The same bytes as a file of the batch: a duplicate, and the batch ends before it.
    (
        "segmentation_c_again.csv",
        csv("CONS_ID,INTEREST_ID,opt", "1,1,out", "2,999,in", "3,1,in"),
    ),
    # Rejected whole (no interest column): the batch ends before it too.
    ("segmentation_d.csv", csv("email,opt", "maria.alvarez@example.org,in")),
    # A new interest: created by this file, which ends its batch...
    (
        "segmentation_e.csv",
        csv(
            "email,interest_name,opt",
            "maria.alvarez@example.org,Gardening Club,in",
            "tom.becker@example.org,Monthly Newsletter,out",
        ),
    ),
    # ...so that this one finds it, by name and by the id it was given.
    (
        "segmentation_f.csv",
        csv(
            "email,member_id,interest_name,interest_id,opt",
            "j.okafor@example.net,,gardening club,,in",
            "maria.alvarez@example.org,,,{gardening_id},out",
            ",M-1001,Monthly Newsletter,,in",
        ),
    ),
    ("segmentation_g.csv", csv("member_id,interest_name,opt", "M-1001,Monthly Newsletter,out")),
]

# Tables compared whole; the columns that hold the applying instant are compared by what they
# mean (the upload they belong to), not by value: the two runs apply at different times.
TABLES = {
    "interest_memberships": "cons_id, interest_id",
    "membership_history": "cons_id, interest_id, segment_id, upload_id, change, run_id",
    "upload_before_interest_memberships": "cons_id, interest_id, _undo_upload_id",
    "interests": "interest_id",
    "interest_groups": "group_id",
    "segments": "segment_id",
    "uploads": "file_name",
}
INSTANTS = ["since", "updated_at", "at", "created_at", "applied_at"]


def _deployment(applied_sample, root: Path, monkeypatch) -> tuple[Deployment, list[str]]:
    """A copy of the applied sample with one person erased and FILES received."""
    deployment = copy_of(applied_sample, root, monkeypatch)
    forget(
        deployment.data,
        IdentifierKind.EMAIL,
        "kwame.mensah@example.org",
        at=datetime(2026, 11, 20),
        dagster_home=None,
    )
    next_interest = deployment.query("SELECT max(interest_id) + 1 AS i FROM interests")["i"][0]
    for name, content in FILES:
        deployment.drop(name, content.replace("{gardening_id}", str(next_interest)))
    received = receive_inbox(deployment.data, settle=0)
    return deployment, [file.upload_id for file in received]


def _tables(deployment: Deployment) -> dict[str, pl.DataFrame]:
    with connect(deployment.data.warehouse) as con:
        return {
            table: frame(con, f"SELECT * FROM {table} ORDER BY {order}")
            for table, order in TABLES.items()
        }


@pytest.fixture(scope="module")
def both(applied_sample, tmp_path_factory):
    """(the reports and tables of FILES applied in batches; the same, one file at a time)."""
    results = []
    for how in ("batched", "alone"):
        with pytest.MonkeyPatch.context() as patch:
            root = tmp_path_factory.mktemp(how) / "deployment"
            deployment, upload_ids = _deployment(applied_sample, root, patch)
            with connect(deployment.data.warehouse) as con:
                if how == "batched":
                    reports = list(batch.process_uploads(deployment.data, con, upload_ids, "r1"))
                else:
                    reports = [process_upload(deployment.data, con, u, "r1") for u in upload_ids]
            errors = {
                path.name: path.read_text() for path in deployment.data.rejected.glob("*.csv")
            }
            results.append((reports, _tables(deployment), errors, deployment))
    return results


def test_every_file_gets_the_report_it_gets_alone(both):
    (batched, *_), (alone, *_) = both
    assert [(r.file_name, r.status) for r in batched] == [(r.file_name, r.status) for r in alone]
    assert [r.status for r in batched] == [
        "applied", "applied", "applied", "duplicate", "rejected", "applied", "applied", "applied"
    ]  # fmt: skip
    assert [(r.upload_id, r.status, dict(r.counts), r.error) for r in batched] == [
        (r.upload_id, r.status, dict(r.counts), r.error) for r in alone
    ]
    for one, other in zip(batched, alone, strict=True):
        assert one.stages.keys() == other.stages.keys()
        for stage in one.stages:
            assert dict(one.stages[stage]) == dict(other.stages[stage]), (one.file_name, stage)


def test_the_warehouse_ends_as_if_each_file_applied_in_turn(both):
    (_, batched, *_), (_, alone, *_) = both
    for table, rows in batched.items():
        kept = [c for c in rows.columns if c not in INSTANTS]
        assert rows.height > 0 or table == "interest_groups", table
        assert_frame_equal(rows.select(kept), alone[table].select(kept), check_dtypes=False)


def test_each_change_carries_its_own_uploads_instant(both):
    """A change's instant is its upload's: history in file order, a membership's `since` the
    instant of the change that set it, a before-image's the instant of the change it undoes."""
    _, batched, *_ = both[0]
    history = batched["membership_history"].join(
        batched["uploads"].select("upload_id", "file_name"), on="upload_id"
    )
    # One key changed by each of three files of one batch, then by two files of the next.
    maria = history.filter(
        pl.col("cons_id") == 1, pl.col("interest_id") == 1, pl.col("file_name").str.len_chars() < 20
    ).sort("at")
    assert maria.select("file_name", "change").rows() == [
        ("segmentation_a.csv", "opted_out"),
        ("segmentation_b.csv", "opted_in"),
        ("segmentation_c.csv", "opted_out"),
        ("segmentation_f.csv", "opted_in"),
        ("segmentation_g.csv", "opted_out"),
    ]
    instant_of = dict(history.select("upload_id", "at").unique().iter_rows())
    memberships = batched["interest_memberships"].filter(pl.col("upload_id").is_in(instant_of))
    assert memberships.height > 0
    for row in memberships.iter_rows(named=True):
        assert row["since"] == row["updated_at"] == instant_of[row["upload_id"]]
    images = batched["upload_before_interest_memberships"]
    b = batched["uploads"].filter(pl.col("file_name") == "segmentation_b.csv")["upload_id"][0]
    a = batched["uploads"].filter(pl.col("file_name") == "segmentation_a.csv")["upload_id"][0]
    (image,) = images.filter(
        pl.col("_undo_upload_id") == b, pl.col("cons_id") == 1, pl.col("interest_id") == 1
    ).iter_rows(named=True)
    # What b replaced is what a wrote, at a's instant.
    assert (image["status"], image["upload_id"], image["since"]) == ("opted_out", a, instant_of[a])


def test_errors_files_are_the_same(both):
    (*_, batched_errors, _), (*_, alone_errors, _) = both
    assert batched_errors.keys() == alone_errors.keys()
    assert len(batched_errors) >= 3
    assert batched_errors == alone_errors


def test_undo_treats_a_batched_file_as_one_applied_alone(both):
    """The last file undone; an earlier file whose rows a later one changed refused."""
    outcomes = []
    for *_, deployment in both:
        with connect(deployment.data.warehouse) as con:
            ids = dict(frame(con, "SELECT file_name, upload_id FROM uploads").iter_rows())
            with pytest.raises(UndoRefused) as refused:
                undo_upload(con, ids["segmentation_a.csv"], at=datetime(2026, 11, 21))
            undo_upload(con, ids["segmentation_g.csv"], at=datetime(2026, 11, 21))
            memberships = frame(
                con,
                "SELECT cons_id, interest_id, status, upload_id FROM interest_memberships "
                "ORDER BY cons_id, interest_id",
            )
        outcomes.append((str(refused.value), memberships))
    assert outcomes[0][0] == outcomes[1][0]
    assert_frame_equal(outcomes[0][1], outcomes[1][1])
