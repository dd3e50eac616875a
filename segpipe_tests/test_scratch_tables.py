"""The temp tables an upload works in are its own: none outlives its upload, whatever became
of it (applied, rejected, held, or failed half-way), on the connection that processed it.
Its validated and resolved rows and the view of its accepted rows included: rejected after the
validated table was made, failed while the view is read, failed once the resolved table exists.
Nor does any table a destination's sync computes in outlive the sync (or its unchanged check),
whether it wrote files, found nothing new, was held by the removal guard or failed."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from segpipe.exports.destinations import configured_pairs, load_destinations
from segpipe.exports.sync import sync_destination, sync_is_unchanged
from segpipe.ingest.receive import receive_inbox
from segpipe.kinds import manual
from segpipe.pipeline import process_upload
from segpipe.warehouse.connection import connect
from segpipe.warehouse.guard import RemovalHeld, RemovalLimit
from segpipe.warehouse.segments import delete_segment
from segpipe.warehouse.sql import transaction
from segpipe_tests.conftest import Deployment, copy_of, csv

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


def test_no_temp_table_survives_a_sync(
    applied_sample: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    deployment = copy_of(applied_sample, tmp_path / "deployment", monkeypatch)
    # The sample's destinations: a csv one on the email channel, an attentive one on sms.
    destinations = load_destinations(deployment.data.segments_yaml)
    assert [d.format for d in destinations] == ["csv", "attentive"]
    start = deployment.query('SELECT max("at") AS at FROM syncs')["at"][0]
    seconds = itertools.count(1)

    def later() -> datetime:
        """A second after the sync before (the day of the sample's, so that an attentive
        destination can be unchanged): each sync writes its files under its own stamp."""
        return start + timedelta(seconds=next(seconds))

    def failing_when(failing: str):
        def checkpoint(stage: str):
            if stage == failing:
                raise RuntimeError(f"disk full when {stage}")

        return checkpoint

    with connect(deployment.data.warehouse) as con:
        for destination in destinations:
            pairs = configured_pairs(con, [destination])
            # The run's check, then a sync that finds nothing new, then one that writes files.
            sync_is_unchanged(con, deployment.data, destination, pairs, at=later())
            assert _temporary(con) == [], destination.name
            assert sync_destination(
                con, deployment.data, destination, pairs, at=later(), skip_unchanged=True
            ).unchanged, destination.name
            assert _temporary(con) == [], destination.name
            synced = sync_destination(con, deployment.data, destination, pairs, at=later())
            assert synced.pairs and not synced.unchanged, destination.name
            assert _temporary(con) == [], destination.name
            # Failed once its files are staged, and inside its transaction during the swap.
            for stage in ("staged", "swapped"):
                with pytest.raises(RuntimeError, match=f"disk full when {stage}"):
                    sync_destination(
                        con,
                        deployment.data,
                        destination,
                        pairs,
                        at=later(),
                        checkpoint=failing_when(stage),
                    )
                assert _temporary(con) == [], (destination.name, stage)

        # Held: the attentive destination mirrors, and would lose a whole segment.
        attentive = destinations[1]
        with transaction(con):
            delete_segment(con, "VIP Shoppers", later())
        pairs = configured_pairs(con, [attentive])
        hold_any = RemovalLimit(max_share=0.0, exempt_below=1)
        with pytest.raises(RemovalHeld, match="VIP Shoppers"):
            sync_destination(
                con, deployment.data, attentive, pairs, at=later(), removal_limit=hold_any
            )
        assert _temporary(con) == []
