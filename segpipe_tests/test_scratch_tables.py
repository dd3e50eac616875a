"""The temp tables an upload works in are its own: none outlives its upload, whatever became
of it (applied, rejected, held, or failed half-way), on the connection that processed it.
Its validated and resolved rows and the view of its accepted rows included: rejected after the
validated table was made, failed while the view is read, failed once the resolved table exists."""

from __future__ import annotations

import duckdb
import pytest

from segpipe.ingest.receive import receive_inbox
from segpipe.kinds import manual
from segpipe.pipeline import process_upload
from segpipe.warehouse.connection import connect
from segpipe_tests.conftest import Deployment, csv

PHONES = [f"+1415555{n:04d}" for n in range(30)]


def _delivery(phones: list[str]) -> str:
    return "".join(f"{phone[2:]},Loyal Fans\r\n" for phone in phones)


def _temporary(con) -> list[str]:
    return [
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary UNION ALL "
            "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal"
        ).fetchall()
    ]


def _process(deployment: Deployment, con, name: str, content: str) -> str:
    deployment.drop(name, content)
    (received,) = receive_inbox(deployment.data)
    return process_upload(deployment.data, con, received.upload_id).status


def test_no_temp_table_survives_an_upload(deployment: Deployment, monkeypatch):
    people = [f"p{n}@example.org,{phone},y,y" for n, phone in enumerate(PHONES)]
    files = [
        # applied (a superseded and a rejected row among them)
        ("constituents_a.csv", csv("email,phone,sms_opt_in,email_opt_in", *people, people[0],
                                   "bad-email,,y,y"), "applied"),
        ("acme_subscriber_segment_20261101.csv", _delivery(PHONES), "applied"),
        ("manual_segment_a.csv", csv("segment,email", "Board,p1@example.org",
                                     "Board,nobody@example.org"), "applied"),
        # rejected whole: before validation and at it
        ("constituents_b.csv", csv("first_name", "Ann"), "rejected"),
        ("acme_subscriber_segment_20261102.csv", "2125550100,X\r\nann@example.org,X\r\n",
         "rejected"),
        # held: the delivery would empty most of Loyal Fans
        ("acme_subscriber_segment_20261103.csv", _delivery(PHONES[:5]), "held"),
        # rejected at resolve, its rows validated: older than the applied 20261101 delivery
        ("acme_subscriber_segment_20261031.csv", _delivery(PHONES), "rejected"),
    ]  # fmt: skip
    with connect(deployment.data.warehouse) as con:
        for name, content, status in files:
            assert _process(deployment, con, name, content) == status, name
            assert _temporary(con) == [], name

        def fail(*args, **kwargs):
            raise RuntimeError("disk full")

        # failed half-way through applying: the exception goes up, the scratch tables do not stay
        monkeypatch.setattr(manual, "change_members", fail)
        with pytest.raises(RuntimeError, match="disk full"):
            _process(deployment, con, "manual_segment_b.csv", csv("segment,email", "B,p2@ex.org"))
        assert _temporary(con) == []

        # failed in the statement that reads the accepted rows' view into the resolved table
        def failing_sql(accepted: str) -> str:
            return f"SELECT error('disk full') AS x FROM {accepted}"

        monkeypatch.setattr(manual, "_judge_sql", failing_sql)
        with pytest.raises(duckdb.Error, match="disk full"):
            _process(deployment, con, "manual_segment_c.csv", csv("segment,email", "C,p3@ex.org"))
        assert _temporary(con) == []
