"""Trusting an upload: dry run, removal guard, undo, members --as-of and history (issue #15)."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from segpipe import cli
from segpipe.config import WAREHOUSE_ENV
from segpipe.dry_run import dry_run, run_effect
from segpipe.exports.destinations import Destination, resolve_pairs
from segpipe.exports.sync import sync_destination
from segpipe.ingest.receive import receive_inbox
from segpipe.pipeline import Stage, process_upload
from segpipe.warehouse.before_images import KEYS
from segpipe.warehouse.connection import connect
from segpipe.warehouse.guard import RemovalHeld
from segpipe.warehouse.history import members_at
from segpipe.warehouse.schema import TABLES
from segpipe.warehouse.undo import UndoRefused, undo_upload
from segpipe_tests.conftest import SAMPLE, Deployment, csv

# What an undo adds to rather than puts back: the uploads' statuses, the history of changes, and
# segpipe_meta, whose cons_id high-water mark stays up so an undone person's cons_id is never
# given to anyone else.
# upload_contents (the decoded-content fingerprint of every upload, like its `uploads` row) is
# kept too: a duplicate is judged against applied uploads only, so an undone one matches nothing.
# suppression_history, like membership_history, gains the undo's own changes.
BOOKKEEPING = {
    "uploads", "membership_history", "segpipe_meta", "upload_contents", "suppression_history"
}  # fmt: skip


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def tables(deployment: Deployment, only: set[str] | None = None) -> dict[str, pl.DataFrame]:
    """Every table's rows (bookkeeping included), sorted on every column: what 'unchanged' is
    compared on."""
    every = deployment.query(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
    )["table_name"]
    found = deployment.queries({table: f'SELECT * FROM "{table}"' for table in only or every})
    return {
        table: rows.sort(rows.columns, nulls_last=True) if rows.height else rows
        for table, rows in found.items()
    }


def assert_same_tables(before: dict, after: dict, columns_of: dict | None = None) -> None:
    for table, rows in before.items():
        now = after[table]
        if columns_of and table in columns_of:
            now = now.select(rows.columns)
        assert now.equals(rows), f"{table} changed:\nbefore\n{rows}\nafter\n{now}"


def apply_inbox(deployment: Deployment) -> list[str]:
    """Apply the inbox's files in arrival order with the plain pipeline (no Dagster run)."""
    applied = []
    for received in receive_inbox(deployment.data):
        with connect(deployment.data.warehouse) as con:
            report = process_upload(deployment.data, con, received.upload_id)
        applied.append(report.upload_id)
    return applied


def test_the_report_of_an_upload_is_read_only_and_keyed_by_stage(deployment: Deployment):
    deployment.drop("constituents_a.csv", csv("email", "ann@example.org"))
    (received,) = receive_inbox(deployment.data)
    with connect(deployment.data.warehouse) as con:
        report = process_upload(deployment.data, con, received.upload_id)
    assert list(report.stages) == list(Stage)  # every stage reached, in order
    assert report.stages[Stage.RAW]["status"] == "applied"
    assert report.counts["rows_applied"] == 1
    with pytest.raises(AttributeError):
        report.status = "rejected"  # type: ignore[misc]
    with pytest.raises(TypeError):
        report.stages[Stage.RAW]["status"] = "rejected"  # type: ignore[index]


def apply_file(deployment: Deployment, name: str, content: str) -> str:
    """Apply one file; its upload id (applied or held, never rejected)."""
    deployment.drop(name, content)
    (upload_id,) = apply_inbox(deployment)
    status = deployment.query("SELECT status, error FROM uploads WHERE upload_id = ?", [upload_id])
    assert status["status"][0] in ("applied", "held"), status.row(0)
    return upload_id


def undo(deployment: Deployment, upload_id: str):
    with connect(deployment.data.warehouse) as con:
        return undo_upload(con, upload_id, at=_now())


# --- dry run ----------------------------------------------------------------------------------


def _files(data_root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data_root)): p.read_bytes()
        for p in sorted(data_root.rglob("*"))
        if p.is_file() and ".dagster" not in p.parts
    }


def test_dry_run_changes_nothing_and_shows_what_the_real_run_then_does(
    sample: Deployment, tmp_path: Path
):
    # A warehouse with history: the first half of the sample applied for real.
    # (constituents_2026-11-02_updates.csv among the later ones: it creates and updates people.)
    inbox = sorted(sample.data.inbox.iterdir())
    later = [inbox[1], *inbox[8:]]
    held_back = tmp_path / "later"
    held_back.mkdir()
    for path in later:
        path.rename(held_back / path.name)
    assert sample.run(as_of=datetime(2026, 11, 7))[0] == 0
    for path in later:
        (held_back / path.name).rename(path)
    before_tables = tables(sample)
    before_files = _files(sample.data.root)
    runs_before = len(sample.instance().get_run_records())

    report = tmp_path / "effect.json"
    printed = io.StringIO()
    code = dry_run(sample.data, as_of=datetime(2026, 11, 7), out=printed, json_path=report)

    # Files first: reading the tables opens the warehouse the way segpipe does, which may
    # rewrite its catalog (CREATE OR REPLACE VIEW) without changing any row.
    assert _files(sample.data.root) == before_files  # inbox full, warehouse bytes, no archive
    assert_same_tables(before_tables, tables(sample))
    assert len(sample.instance().get_run_records()) == runs_before
    shown = json.loads(report.read_text())
    assert code == 2 and shown["exit_code"] == 2  # the sample's bad files
    assert "Would do" in printed.getvalue() and "Total:" in printed.getvalue()

    since = _now()
    real_code, _ = sample.run(as_of=datetime(2026, 11, 7))
    pending = [f["upload_id"] for f in shown["files"]]
    real = json.loads(json.dumps(run_effect(sample.data, pending, since), default=str))
    assert real_code == code
    for part in ("files", "refresh", "destinations", "total"):
        assert shown[part] == real[part], part
    # And the counts are the warehouse's own: people, opt-ins, adds per segment.
    people = sample.query("SELECT count(*) AS n FROM constituents")["n"][0]
    before_people = before_tables["constituents"].height
    assert shown["total"]["people_created"] == people - before_people == 1
    assert shown["total"]["people_updated"] == 2
    newsletter = sample.query(
        "SELECT count(*) FILTER (WHERE change = 'opted_in') AS ins FROM membership_history h "
        "JOIN interests i USING (interest_id) WHERE i.name = 'Monthly Newsletter' "
        "AND h.upload_id IN (SELECT unnest(?::VARCHAR[]))",
        [pending],
    )["ins"][0]
    assert shown["total"]["interests"]["Monthly Newsletter"]["opt_ins"] == newsletter > 0
    vip = shown["total"]["segments"]["VIP Shoppers"]
    assert (vip["adds"], vip["removes"]) == (4, 1)
    assert sum(s["adds"] for s in shown["destinations"]["attentive"].values()) > 0


# --- removal guard ----------------------------------------------------------------------------


def _phones(count: int, start: int = 0) -> list[str]:
    return [f"+1415555{n:04d}" for n in range(start, start + count)]


def _people(deployment: Deployment, count: int) -> None:
    # Opted in to both channels: an email destination exports only people with email consent.
    rows = [f"p{n}@example.org,{phone},y,y" for n, phone in enumerate(_phones(count))]
    apply_file(
        deployment, "constituents_guard.csv", csv("email,phone,sms_opt_in,email_opt_in", *rows)
    )


def _delivery(name: str, phones: list[str], segment: str = "Loyal Fans") -> str:
    # Attentive's own shape: 10-digit US phone, segment name, no header, CRLF line ends.
    return "".join(f"{p[2:]},{segment}\r\n" for p in phones)


def test_truncated_attentive_delivery_is_held_until_forced(deployment: Deployment):
    _people(deployment, 30)
    apply_file(deployment, "acme_subscriber_segment_20261101.csv", _delivery("a", _phones(30)))
    assert len(deployment.members("Loyal Fans")) == 30

    held_id = apply_file(
        deployment, "acme_subscriber_segment_20261102.csv", _delivery("b", _phones(5))
    )
    upload = deployment.query("SELECT * FROM uploads WHERE upload_id = ?", [held_id]).row(
        0, named=True
    )
    assert upload["status"] == "held"
    assert "'Loyal Fans' would lose 25 of its 30 members" in upload["error"]
    assert "segpipe run --allow-large-removals" in upload["error"]
    assert len(deployment.members("Loyal Fans")) == 30  # nothing applied
    # Its report says held, not rejected: the file waits for a person, it is not wrong.
    (row,) = pl.read_csv(deployment.data.errors_csv(held_id)).iter_rows(named=True)
    assert row["outcome"] == "held" and row["reason"] == upload["error"]

    with connect(deployment.data.warehouse) as con:  # what --allow-large-removals asks
        report = process_upload(deployment.data, con, held_id, allow_large_removals=True)
    assert report.status == "applied"
    assert len(deployment.members("Loyal Fans")) == 5


def test_guard_spares_small_segments_and_follows_max_removal_share(deployment: Deployment):
    _people(deployment, 30)
    deployment.data.segments_yaml.write_text("max_removal_share: 0.9\n")
    apply_file(deployment, "acme_subscriber_segment_20261101.csv", _delivery("a", _phones(30)))
    small = _delivery("a", _phones(10), segment="Small")
    apply_file(deployment, "acme_subscriber_segment_20261102.csv", small)
    # 80% of Loyal Fans leaves (under 0.9); Small (10 members) loses all 10: exempt.
    apply_file(
        deployment,
        "acme_subscriber_segment_20261103.csv",
        _delivery("b", _phones(6)) + _delivery("b", _phones(0, 10), segment="Small"),
    )
    assert len(deployment.members("Loyal Fans")) == 6
    assert deployment.upload("acme_subscriber_segment_20261103.csv")["status"] == "applied"


def test_mirror_sync_that_would_empty_a_list_is_held(deployment: Deployment):
    _people(deployment, 25)
    apply_file(
        deployment,
        "manual_segment_fans.csv",
        csv("segment,email", *[f"Fans,p{n}@example.org" for n in range(25)]),
    )
    destination = Destination("crm", "email", ("Fans",))
    with connect(deployment.data.warehouse) as con:
        first = sync_destination(
            con,
            deployment.data,
            destination,
            resolve_pairs(con, destination),
            at=datetime(2026, 11, 2),
        )
    assert first.pairs[0].adds == 25
    removals = [f"Fans,p{n}@example.org,remove" for n in range(20)]
    apply_file(deployment, "manual_segment_fans_2.csv", csv("segment,email,action", *removals))
    with connect(deployment.data.warehouse) as con:
        with pytest.raises(RemovalHeld, match="'Fans' would lose 20 of its 25 members"):
            sync_destination(
                con,
                deployment.data,
                destination,
                resolve_pairs(con, destination),
                at=datetime(2026, 11, 3),
            )
        assert con.execute("SELECT count(*) FROM syncs").fetchall()[0][0] == 1
        forced = sync_destination(
            con,
            deployment.data,
            destination,
            resolve_pairs(con, destination),
            at=datetime(2026, 11, 3),
            removal_limit=None,
        )
    assert forced.pairs[0].removes == 20


def test_segpipe_run_says_a_held_sync_is_held_and_the_step_says_so_by_key(deployment: Deployment):
    """Through `segpipe run`: the held sync exits 2 with the guard's message (not "run failed"),
    the dry run reports the same line, and the Dagster step failure carries the hold as metadata
    (`destinations_held`), which is how the runner tells a hold from a failure."""
    import dagster as dg

    from segpipe.defs.exports.assets import DESTINATIONS_HELD

    deployment.data.segments_yaml.write_text(
        "destinations:\n  - {name: crm, key: email, segments: [Fans]}\n"
    )
    _people(deployment, 25)
    fans = csv("segment,email", *[f"Fans,p{n}@example.org" for n in range(25)])
    deployment.drop("manual_segment_fans.csv", fans)
    assert deployment.run()[0] == 0
    removals = [f"Fans,p{n}@example.org,remove" for n in range(20)]
    deployment.drop("manual_segment_fans_2.csv", csv("segment,email,action", *removals))
    message = (
        "Held: sync to destination 'crm' held by the removal guard: segment 'Fans' would lose "
        "20 of its 25 members"
    )

    out = io.StringIO()
    assert dry_run(deployment.data, as_of=None, out=out, json_path=None) == 2
    assert f"segpipe: {message}" in out.getvalue()
    code, printed = deployment.run()
    assert code == 2, printed
    assert f"segpipe: {message}" in printed
    assert "run failed" not in printed

    with dg.DagsterInstance.from_config(str(deployment.data.dagster_home)) as instance:
        failures = instance.get_records_for_run(
            instance.get_runs(limit=1)[0].run_id, of_type=dg.DagsterEventType.STEP_FAILURE
        ).records
    (failure,) = [r.event_log_entry.dagster_event.step_failure_data for r in failures]
    (held,) = failure.user_failure_data.metadata[DESTINATIONS_HELD].value
    assert held.startswith(message.removeprefix("Held: "))


# --- undo -------------------------------------------------------------------------------------

BASE = {
    "constituents_base.csv": csv(
        "email,phone,first_name,email_opt_in,sms_opt_in,tier",
        "ann@example.org,415-555-0101,Ann,y,y,gold",
        "bob@example.org,415-555-0102,Bob,y,y,silver",
        "cy@example.org,415-555-0103,Cy,n,y,",
    ),
    "interest_xref_base.csv": csv(
        "foreign_source,foreign_value,interest_name", "eventbrite,EB-1,Gala"
    ),
    "segmentation_base.csv": csv(
        "email,interest_name,opt", "ann@example.org,Newsletter,in", "bob@example.org,Newsletter,out"
    ),
    "manual_segment_base.csv": csv("segment,email", "Board,ann@example.org"),
    "acme_subscriber_segment_20261101.csv": "4155550101,VIP\r\n4155550102,VIP\r\n",
    "suppression_base.csv": csv(
        "email,phone,channel,reason", "ann@example.org,,email,complaint", ",415-555-0102,sms,stop"
    ),
}
# One upload of every kind, each changing and creating rows.
EVERY_KIND = {
    "constituent": (
        "constituents_change.csv",
        csv(
            "email,first_name,tier,email_opt_in",
            "ann@example.org,Annie,platinum,n",
            "dee@example.org,Dee,bronze,y",
        ),
    ),
    "segmentation": (
        "segmentation_change.csv",
        csv(
            "email,Interest Name,OPT",
            "ann@example.org,Newsletter,out",
            "bob@example.org,Newsletter,in",
            "cy@example.org,Brand New Interest,in",
        ),
    ),
    "interest_xref": (
        "interest_xref_change.csv",
        csv("foreign_value,interest_name", "EB-1,Newsletter", "EB-2,Another New"),
    ),
    "events": (
        "events_change.csv",
        csv(
            "email,event,timestamp,url",
            "ann@example.org,page_view,2026-11-01T10:00:00Z,/donate",
        ),
    ),
    "manual": (
        "manual_segment_change.csv",
        csv(
            "segment,email,action",
            "Board,ann@example.org,remove",
            "Board,bob@example.org,add",
            "Volunteers,cy@example.org,add",
        ),
    ),
    "subscriber": (
        "acme_subscriber_segment_20261102.csv",
        "4155550102,VIP\r\n4155550103,VIP\r\n4155550103,New List\r\n",
    ),
    # Lifts Ann's suppression, suppresses her again on another channel, adds Cy.
    "suppression": (
        "suppression_change.csv",
        csv(
            "email,channel,action,reason",
            "ann@example.org,all,remove,asked to return",
            "ann@example.org,sms,add,new complaint",
            "cy@example.org,all,add,bounced",
        ),
    ),
}


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_undo_puts_every_table_back(deployment: Deployment, kind: str):
    for name, content in BASE.items():
        deployment.drop(name, content)
    assert all(
        deployment.query("SELECT status FROM uploads WHERE upload_id = ?", [u])["status"][0]
        == "applied"
        for u in apply_inbox(deployment)
    )
    before = tables(deployment, set(TABLES) - BOOKKEEPING)
    history_before = deployment.query("SELECT count(*) AS n FROM membership_history")["n"][0]
    name, content = EVERY_KIND[kind]
    upload_id = apply_file(deployment, name, content)
    changed = tables(deployment, set(TABLES) - BOOKKEEPING)
    assert any(not changed[t].equals(before[t]) for t in before), "the upload changed nothing"

    result = undo(deployment, upload_id)

    # Columns an upload added to constituents stay (DuckDB cannot drop them under the email
    # index), empty: every value is as before.
    after = tables(deployment, set(TABLES) - BOOKKEEPING)
    assert_same_tables(before, after, columns_of={"constituents": True})
    added = set(after["constituents"].columns) - set(before["constituents"].columns)
    assert all(after["constituents"][c].null_count() == after["constituents"].height for c in added)
    assert deployment.upload(name)["status"] == "undone"
    undo_rows = deployment.query(
        "SELECT * FROM membership_history WHERE run_id = ?", [result.run_id]
    )
    made = deployment.query(
        "SELECT count(*) AS n FROM membership_history WHERE upload_id = ? AND run_id IS NULL",
        [upload_id],
    )["n"][0]
    assert undo_rows.height == made  # each change the upload made, reversed and recorded
    assert deployment.query("SELECT count(*) AS n FROM membership_history")["n"][0] == (
        history_before + 2 * made
    )
    assert undone_counts(changed, after) == counts_of(result)


def undone_counts(changed: dict, after: dict) -> dict[str, tuple[int, int]]:
    """table -> (rows put back, rows taken away) as the tables show them: rows after the undo
    that were not there as they are before it, and rows whose key the undo made disappear."""
    counts = {}
    for table, now in after.items():
        was = changed[table].select(now.columns)
        if table in KEYS:
            back = now.join(was, on=now.columns, how="anti", nulls_equal=True).height
            keys = list(KEYS[table])
            gone = was.join(now, on=keys, how="anti", nulls_equal=True).height
        else:  # events: taken away, never put back
            back, gone = 0, was.height - now.height
        if back or gone:
            counts[table] = (back, gone)
    return counts


def counts_of(result) -> dict[str, tuple[int, int]]:
    names = set(result.rows_restored) | set(result.rows_removed)
    counts = {t: (result.rows_restored.get(t, 0), result.rows_removed.get(t, 0)) for t in names}
    return {t: n for t, n in counts.items() if any(n)}


UNDO_COUNTS = {
    # Only a removal: the membership is put back and nothing taken away (it printed -1 removed).
    "manual_segment_change.csv": (
        csv("segment,email,action", "Board,ann@example.org,remove"),
        "1 segment_memberships row(s) restored; 1 membership change(s)",
    ),
    # One membership taken away, one added: the added one was netted against the other.
    "manual_segment_swap.csv": (
        csv("segment,email,action", "Board,ann@example.org,remove", "Board,bob@example.org,add"),
        "1 segment_memberships row(s) restored; 1 segment_memberships row(s) removed; "
        "2 membership change(s)",
    ),
}


@pytest.mark.parametrize("name", UNDO_COUNTS)
def test_undo_prints_the_rows_it_put_back_and_took_away(
    deployment: Deployment, capsys: pytest.CaptureFixture, name: str
):
    for base, content in BASE.items():
        deployment.drop(base, content)
    apply_inbox(deployment)
    content, expected = UNDO_COUNTS[name]
    upload_id = apply_file(deployment, name, content)
    changed = tables(deployment, set(KEYS))
    capsys.readouterr()

    code = cli.main(["undo", "--data-dir", str(deployment.data.root), upload_id])

    printed = capsys.readouterr().out.splitlines()
    assert code == 0
    assert printed[0] == f"undid {upload_id} ({name}): {expected} recorded as undo:{upload_id}"
    after = tables(deployment, set(KEYS))
    shown = re.findall(r"(-?\d+) (\w+) row\(s\) (restored|removed)", printed[0])
    seen = {}  # what the warehouse shows
    for table, (back, gone) in undone_counts(changed, after).items():
        seen.update({(table, "restored"): back, (table, "removed"): gone})
    assert {(t, what): int(n) for n, t, what in shown} == {k: n for k, n in seen.items() if n}


def test_undo_counts_the_rule_based_memberships_of_the_people_it_removes(
    deployment: Deployment, capsys: pytest.CaptureFixture
):
    deployment.data.segments_yaml.write_text(
        "segments:\n  - {name: Gold, all: [{attribute: tier, op: eq, value: gold}]}\n"
    )
    deployment.drop("constituents_a.csv", csv("email,tier", "ann@example.org,gold"))
    assert deployment.run()[0] == 0
    assert len(deployment.members("Gold")) == 1
    upload_id = deployment.upload("constituents_a.csv")["upload_id"]
    capsys.readouterr()

    code = cli.main(["undo", "--data-dir", str(deployment.data.root), upload_id])

    assert code == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"undid {upload_id} (constituents_a.csv): 1 constituents row(s) removed; "
        f"1 segment_memberships row(s) removed; 1 membership change(s) recorded as "
        f"undo:{upload_id}"
    )
    assert deployment.members("Gold") == set()


def test_undo_refuses_while_a_later_upload_changed_the_same_rows(deployment: Deployment):
    apply_file(deployment, "constituents_a.csv", csv("email", "ann@example.org"))
    first = apply_file(
        deployment, "segmentation_a.csv", csv("email,interest_name,opt", "ann@example.org,N,in")
    )
    second = apply_file(
        deployment, "segmentation_b.csv", csv("email,interest_name,opt", "ann@example.org,N,out")
    )
    with pytest.raises(UndoRefused, match=f"{second} \\(segmentation_b.csv\\)"):
        undo(deployment, first)
    assert deployment.upload("segmentation_a.csv")["status"] == "applied"
    assert deployment.members("N Opt-Out") == {
        deployment.query("SELECT cons_id FROM constituents")["cons_id"][0]
    }

    code = cli.main(["undo", "--data-dir", str(deployment.data.root), second])
    assert code == 0
    assert len(deployment.members("N Opt-In")) == 1
    undo(deployment, first)
    assert deployment.query("SELECT count(*) AS n FROM interests")["n"][0] == 0
    with pytest.raises(UndoRefused, match="is undone"):
        undo(deployment, first)


def test_undo_refuses_when_a_later_upload_used_a_person_it_created(deployment: Deployment):
    created = apply_file(deployment, "constituents_a.csv", csv("email", "ann@example.org"))
    later = apply_file(
        deployment, "manual_segment_a.csv", csv("segment,email", "Board,ann@example.org")
    )
    with pytest.raises(UndoRefused, match=later):
        undo(deployment, created)


def test_undo_refuses_an_upload_applied_before_before_images_were_kept(
    deployment: Deployment, capsys: pytest.CaptureFixture
):
    """Uploads applied before segpipe kept before-images have none: undo said it undid them and
    changed nothing (the person stayed). Their images are deleted here, as such uploads have
    none."""
    upload_id = apply_file(deployment, "constituents_a.csv", csv("email", "ann@example.org"))
    shadows = deployment.query(
        "SELECT table_name FROM information_schema.tables "
        "WHERE starts_with(table_name, 'upload_before_')"
    )["table_name"]
    assert len(shadows) > 0
    for shadow in shadows:
        deployment.query(f"DELETE FROM {shadow} WHERE _undo_upload_id = ?", [upload_id])
    capsys.readouterr()

    code = cli.main(["undo", "--data-dir", str(deployment.data.root), upload_id])

    assert code == 1
    assert capsys.readouterr().err == (
        f"segpipe: cannot undo: upload {upload_id} (constituents_a.csv) has no record of what "
        "it changed (applied before segpipe kept one, or it changed nothing), so undo cannot "
        "put anything back; correct it with a new file instead\n"
    )
    assert deployment.query("SELECT count(*) AS n FROM constituents")["n"][0] == 1
    assert deployment.upload("constituents_a.csv")["status"] == "applied"


def test_undo_upload_job_in_dagster(deployment: Deployment):
    from segpipe.definitions import defs

    upload_id = apply_file(deployment, "constituents_a.csv", csv("email", "ann@example.org"))
    job = defs().resolve_job_def("undo_upload_job")
    config = {"ops": {"undo_upload_op": {"config": {"upload_id": upload_id}}}}
    with deployment.instance() as instance:
        result = job.execute_in_process(run_config=config, instance=instance)
        assert result.success
        assert deployment.query("SELECT count(*) AS n FROM constituents")["n"][0] == 0
        again = job.execute_in_process(run_config=config, instance=instance, raise_on_error=False)
    assert not again.success
    assert deployment.upload("constituents_a.csv")["status"] == "undone"


# --- members --as-of, history -----------------------------------------------------------------


def test_members_as_of_matches_snapshots_taken_during_uploads(
    deployment: Deployment, capsys: pytest.CaptureFixture
):
    for name in ("constituents_2026-11-01.csv", "constituents_2026-11-02_updates.csv"):
        apply_file(deployment, name, (SAMPLE / "inbox" / name).read_text())
    sequence = [
        "segmentation_2026-11-03_newsletter.csv",
        "manual_segment_2026-11-04_board_prospects.csv",
        "sirenDenim_subscriber_segment_20261103.csv",
        "manual_segment_2026-11-05_board_prospects_update.csv",
        "sirenDenim_subscriber_segment_20261104_1.csv",
    ]
    watched = ["Monthly Newsletter Opt-In", "Board Prospects", "VIP Shoppers", "Cart Abandoners"]
    snapshots = []
    for name in sequence:
        apply_file(deployment, name, (SAMPLE / "inbox" / name).read_bytes().decode())
        time.sleep(0.01)
        snapshots.append((_now(), {s: deployment.members(s) for s in watched}))
        time.sleep(0.01)
    with connect(deployment.data.warehouse) as con:
        for instant, members in snapshots:
            for segment in watched:
                found = set(members_at(con, segment, instant)["cons_id"])
                assert found == members[segment], (instant, segment)
    assert any(snapshots[0][1][s] != snapshots[-1][1][s] for s in watched)

    instant = snapshots[1][0].isoformat()
    code = cli.main(
        ["members", "Board Prospects", "--as-of", instant, "--data-dir", str(deployment.data.root)]
    )
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0] == "cons_id,member_id,email"
    assert len(lines) - 1 == len(snapshots[1][1]["Board Prospects"])
    assert all("***@" in line for line in lines[1:])
    assert any(line.startswith("1,M-1001,m***@") for line in lines[1:])  # the text Member ID


def test_history_lists_entries_and_exits_with_their_upload(
    deployment: Deployment, capsys: pytest.CaptureFixture
):
    apply_file(deployment, "constituents_a.csv", csv("MEMBER_ID,email", "M-0042,ann@example.org"))
    apply_file(deployment, "manual_segment_a.csv", csv("segment,member_id", "Board,M-0042"))
    apply_file(
        deployment,
        "manual_segment_b.csv",
        csv("segment,email,action", "Board,ann@example.org,remove"),
    )
    code = cli.main(["history", "--member-id", "M-0042", "--data-dir", str(deployment.data.root)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert "entered" in lines[0] and "Board" in lines[0] and "manual_segment_a.csv" in lines[0]
    assert "left" in lines[1] and "manual_segment_b.csv" in lines[1]


def test_history_names_a_deleted_segment_by_its_id(
    deployment: Deployment, capsys: pytest.CaptureFixture
):
    """The history outlives the segment: once deleted it is named by its id (it once crashed)."""
    apply_file(deployment, "constituents_a.csv", csv("MEMBER_ID,email", "M-0042,ann@example.org"))
    apply_file(deployment, "manual_segment_a.csv", csv("segment,member_id", "Board,M-0042"))
    data_dir = ["--data-dir", str(deployment.data.root)]
    (board,) = deployment.query("SELECT segment_id FROM segments WHERE name = 'Board'").rows()
    assert cli.main(["segment", "delete", "Board", *data_dir]) == 0
    capsys.readouterr()

    code = cli.main(["history", "--member-id", "M-0042", *data_dir])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 2
    deleted = f"segment {board[0]} (deleted)"
    assert "entered" in lines[0] and deleted in lines[0] and "manual_segment_a.csv" in lines[0]
    assert "left" in lines[1] and deleted in lines[1]


def test_dry_run_leaves_a_warehouse_kept_elsewhere_unchanged(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """$SEGPIPE_WAREHOUSE puts the warehouse outside the data directory: the dry run copies it
    from there and changes nothing there (it once ran against the real file)."""
    elsewhere = tmp_path / "shared" / "segpipe.duckdb"
    elsewhere.parent.mkdir()
    monkeypatch.setenv(WAREHOUSE_ENV, str(elsewhere))
    deployment.drop("constituents_1.csv", csv("email,first_name", "ann@example.org,Ann"))
    assert deployment.run()[0] == 0
    deployment.drop("constituents_2.csv", csv("email,first_name", "bob@example.org,Bob"))
    before = {p.name: p.read_bytes() for p in elsewhere.parent.iterdir()}

    report = tmp_path / "effect.json"
    printed = io.StringIO()
    code = dry_run(deployment.data, as_of=None, out=printed, json_path=report)

    assert code == 0, printed.getvalue()
    assert {p.name: p.read_bytes() for p in elsewhere.parent.iterdir()} == before
    assert not (deployment.data.root / "warehouse.duckdb").exists()
    assert json.loads(report.read_text())["total"]["people_created"] == 1  # Bob; Ann was there
    assert deployment.run()[0] == 0
    assert deployment.query("SELECT count(*) AS n FROM constituents")["n"][0] == 2


def test_dry_run_totals_count_rows_of_files_that_apply_not_files_refused_whole(
    deployment: Deployment,
):
    """A file refused whole is a line of its own with its problem; its rows are not "rows
    rejected" in the total (they were never looked at one by one). The total counts files by
    status applied first, whichever file arrived first."""
    deployment.drop("constituents_2.csv", csv("first_name", "Cy", "Di", "Ed"))  # no identifier
    deployment.drop(
        "constituents_1.csv", csv("email,first_name", "ann@example.org,Ann", "not-an-email,Bo")
    )
    printed = io.StringIO()
    assert dry_run(deployment.data, as_of=None, out=printed, json_path=None) == 2
    shown = printed.getvalue()

    total = shown.split("\nTotal: ")[1]
    assert total.startswith("2 file(s) (1 applied, 1 rejected)"), shown
    assert "rows rejected 1, ignored 0" in total
    assert "1 row(s) rejected: invalid email" in total
    assert "missing required column" not in total  # said once, on constituents_2.csv's line
    assert "constituents_2.csv" in shown.split("\nTotal: ")[0]
