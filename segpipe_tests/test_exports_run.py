"""Destination syncs through `segpipe run` and the Dagster assets, driven by real uploads."""

from __future__ import annotations

import dagster as dg
import polars as pl

from segpipe_tests.conftest import SAMPLE, Deployment, csv

SEGMENTS_YAML = """
destinations:
  - name: selligent
    format: csv
    key: external_id
    fields: [email, first_name]
    segments: [Monthly Newsletter Opt-In]
"""
# Everyone may be emailed (the destination's default channel for an external_id key).
PEOPLE = csv(
    "member_id,email,external_id,first_name,email_opt_in",
    "1,ann@example.org,X1,Ann,yes",
    "2,bob@example.org,X2,Bob,yes",
    "3,cy@example.org,,Cy,yes",
)


def _opt(deployment: Deployment, day: int, *rows: str) -> None:
    deployment.drop(f"segmentation_2026-11-{day:02d}.csv", csv("email,interest_name,opt", *rows))


def _keys(deployment: Deployment, name: str) -> list[str]:
    path = deployment.data.exports / "selligent" / "Monthly_Newsletter_Opt-In" / f"{name}.csv"
    return sorted(pl.read_csv(path, infer_schema=False)["external_id"].to_list())


def test_syncs_follow_people_entering_leaving_and_reentering(deployment: Deployment):
    (deployment.data.root / "segments.yaml").write_text(SEGMENTS_YAML)
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    _opt(deployment, 2, "ann@example.org,Monthly Newsletter,in",
         "cy@example.org,Monthly Newsletter,in")  # fmt: skip
    code, printed = deployment.run()
    assert code == 0, printed
    assert _keys(deployment, "adds") == ["X1"]  # Cy has no external_id: skipped
    assert "selligent / Monthly Newsletter Opt-In" in printed

    _opt(deployment, 3, "ann@example.org,Monthly Newsletter,out",
         "bob@example.org,Monthly Newsletter,in")  # fmt: skip
    assert deployment.run()[0] == 0
    assert (_keys(deployment, "adds"), _keys(deployment, "removes")) == (["X2"], ["X1"])

    _opt(deployment, 4, "ann@example.org,Monthly Newsletter,in")
    assert deployment.run()[0] == 0
    assert (_keys(deployment, "adds"), _keys(deployment, "removes")) == (["X1"], [])
    assert _keys(deployment, "members") == ["X1", "X2"]

    syncs = deployment.query(
        'SELECT members, adds, removes, skipped_no_key FROM syncs ORDER BY "at"'
    )
    assert syncs.rows() == [(1, 1, 0, 1), (1, 1, 1, 1), (2, 1, 0, 1)]  # Cy: no key

    with deployment.instance() as instance:
        events = instance.fetch_materializations(dg.AssetKey("segment_export"), limit=10).records
        metadata = [e.asset_materialization for e in events]
    assert {m.partition for m in metadata} == {"selligent/Monthly_Newsletter_Opt-In"}
    assert sorted(m.metadata["adds"].value for m in metadata) == [1, 1, 1]
    assert not any("@" in str(v.value) for m in metadata for v in m.metadata.values())


def _sync_runs(deployment: Deployment) -> int:
    with deployment.instance() as instance:
        return len(instance.get_run_records(dg.RunsFilter(job_name="sync_destinations_job")))


def _export_events(deployment: Deployment) -> int:
    with deployment.instance() as instance:
        key = dg.AssetKey("segment_export")
        return len(instance.fetch_materializations(key, limit=100).records)


def test_a_run_that_changed_nothing_sent_starts_no_sync_run(deployment: Deployment):
    (deployment.data.root / "segments.yaml").write_text(SEGMENTS_YAML)
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    _opt(deployment, 2, "ann@example.org,Monthly Newsletter,in")
    assert deployment.run()[0] == 0
    runs, events, syncs = _sync_runs(deployment), _export_events(deployment), 1

    code, printed = deployment.run()  # no new file
    assert code == 0, printed
    assert "exports unchanged since their last sync: no sync run" in printed
    assert (_sync_runs(deployment), _export_events(deployment)) == (runs, events)
    assert deployment.query("SELECT count(*) AS n FROM syncs")["n"][0] == syncs
    assert "selligent / Monthly Newsletter Opt-In" in printed  # its latest sync, as before

    # A file that changes nobody the destination is sent: still no sync run.
    deployment.drop("constituents_2026-11-03.csv", csv("email,first_name", "zed@example.org,Zed"))
    code, printed = deployment.run()
    assert code == 0 and "no sync run" in printed, printed
    assert _sync_runs(deployment) == runs

    # A changed field of a member is a change: the run syncs, as before.
    deployment.drop("constituents_2026-11-04.csv", csv("email,first_name", "ann@example.org,Anne"))
    code, printed = deployment.run()
    assert code == 0 and "no sync run" not in printed, printed
    assert (_sync_runs(deployment), _export_events(deployment)) == (runs + 1, events + 1)
    members = deployment.data.exports / "selligent" / "Monthly_Newsletter_Opt-In" / "members.csv"
    assert pl.read_csv(members)["first_name"].to_list() == ["Anne"]


def test_a_sync_run_writes_unchanged_destinations_only_when_daily(deployment: Deployment):
    from segpipe.definitions import defs
    from segpipe.defs.exports.jobs import sync_request

    (deployment.data.root / "segments.yaml").write_text(SEGMENTS_YAML)
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    _opt(deployment, 2, "ann@example.org,Monthly Newsletter,in")
    assert deployment.run()[0] == 0
    events = _export_events(deployment)
    job = defs().resolve_job_def("sync_destinations_job")
    with deployment.instance() as instance:
        after_segments = sync_request(instance, deployment.data, "sensor")
        assert job.execute_in_process(instance=instance, tags=after_segments.tags).success
        assert _export_events(deployment) == events  # unchanged: no materialization
        daily = sync_request(instance, deployment.data, "daily", sync_all=True)
        assert job.execute_in_process(instance=instance, tags=daily.tags).success
    # The daily sync materializes every pair, changed or not (EXPORTS_FRESHNESS).
    assert _export_events(deployment) == events + 1
    assert deployment.query("SELECT count(*) AS n FROM syncs")["n"][0] == 2


def test_a_deleted_segment_is_removed_from_its_destination_by_the_next_run(
    applied_sample: Deployment, tmp_path, monkeypatch, capsys
):
    """The sample's manual "Gala Volunteers", sent to attentive, deleted: the next run sends
    attentive its removal (Hightouch/Census mirror semantics), once, and status drops it."""
    from segpipe import cli
    from segpipe_tests.conftest import copy_of

    deployment = copy_of(applied_sample, tmp_path / "deployment", monkeypatch)
    folder = deployment.data.exports / "attentive" / "Gala_Volunteers"
    phones = sorted(pl.read_csv(folder / "members.csv", infer_schema=False)["phone"])
    assert len(phones) == 2
    root = str(deployment.data.root)
    assert cli.main(["segment", "delete", "Gala Volunteers", "--data-dir", root]) == 0

    code, printed = deployment.run()
    assert code == 0, printed
    assert "exports unchanged" not in printed
    removes = pl.read_csv(folder / "removes.csv", infer_schema=False)["phone"]
    assert (sorted(removes), pl.read_csv(folder / "members.csv").height) == (phones, 0)
    synced = deployment.query(
        "SELECT members, adds, removes FROM syncs WHERE destination = 'attentive' "
        "AND segment = 'Gala Volunteers' ORDER BY \"at\""
    )
    assert synced.rows() == [(2, 2, 0), (0, 0, 2)]
    capsys.readouterr()
    assert cli.main(["status", "--data-dir", root]) == 0
    assert "Gala Volunteers" not in capsys.readouterr().out

    code, printed = deployment.run()  # sent once: nothing more to sync
    assert code == 0 and "exports unchanged since their last sync" in printed, printed
    assert deployment.query("SELECT count(*) AS n FROM syncs WHERE removes > 0")["n"][0] == 1


def test_a_destination_naming_a_deleted_segment_still_syncs_everything_else(
    applied_sample: Deployment, tmp_path, monkeypatch
):
    """selligent names the sample's manual "Gala Volunteers", which is then deleted: the next
    run still syncs selligent's other segments and attentive, sends both the deleted segment's
    removal, and says once which destination names which missing segment (exit 2, as a held
    sync: the run completed, a person must fix segments.yaml)."""
    from segpipe import cli
    from segpipe_tests.conftest import copy_of

    deployment = copy_of(applied_sample, tmp_path / "deployment", monkeypatch)
    yaml = deployment.data.segments_yaml
    yaml.write_text(
        yaml.read_text().replace(
            "segments: [Monthly Newsletter Opt-In, Advocacy Alerts Opt-In]",
            "segments: [Monthly Newsletter Opt-In, Advocacy Alerts Opt-In, Gala Volunteers]",
        )
    )
    assert deployment.run()[0] == 0
    selligent = deployment.data.exports / "selligent"
    gala = pl.read_csv(selligent / "Gala_Volunteers" / "members.csv", infer_schema=False)
    assert gala.height > 0
    assert (
        cli.main(
            ["segment", "delete", "Gala Volunteers", "--data-dir", str(tmp_path / "deployment")]
        )
        == 0
    )
    deployment.drop(
        "constituents_2026-11-20.csv",
        csv(
            "member_id,email,external_id,first_name,email_opt_in",
            "9001,new@example.org,X9001,New,yes",
        ),
    )
    deployment.drop(
        "segmentation_2026-11-20.csv",
        csv("email,interest_name,opt", "new@example.org,Monthly Newsletter,in"),
    )

    code, printed = deployment.run()
    assert code == 2, printed
    warning = (
        "segpipe: warning: destination 'selligent': segment(s) 'Gala Volunteers' not found "
        "(deleted, or not made yet), not synced"
    )
    assert [line for line in printed.splitlines() if "not found" in line] == [
        line for line in printed.splitlines() if line.startswith(warning)
    ]
    assert printed.count(warning) == 1, printed
    newsletter = selligent / "Monthly_Newsletter_Opt-In"
    adds = pl.read_csv(newsletter / "adds.csv", infer_schema=False)["external_id"].to_list()
    assert adds == ["X9001"]
    removed = pl.read_csv(selligent / "Gala_Volunteers" / "removes.csv", infer_schema=False)
    assert sorted(removed["external_id"]) == sorted(gala["external_id"])
    attentive = deployment.data.exports / "attentive" / "Gala_Volunteers"
    assert pl.read_csv(attentive / "members.csv").height == 0
    assert pl.read_csv(attentive / "removes.csv").height == 2

    code, printed = deployment.run()  # nothing new: no sync run, the warning all the same
    assert code == 2 and "exports unchanged since their last sync" in printed, printed
    assert printed.count(warning) == 1, printed


def test_a_destination_naming_an_unknown_segment_is_warned_not_failed(deployment: Deployment):
    (deployment.data.root / "segments.yaml").write_text(
        "destinations:\n  - {name: crm, key: email, segments: [No such segment]}\n"
        # A misspelled name beside "*" adds nothing, but is said all the same.
        '  - {name: everything, key: email, segments: [Nope, "*"]}\n'
    )
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    code, printed = deployment.run()
    assert code == 2, printed
    assert "segpipe: warning: destination 'crm': segment(s) 'No such segment' not found" in printed
    assert "segpipe: warning: destination 'everything': segment(s) 'Nope' not found" in printed
    assert "run failed" not in printed


def test_the_syncs_run_daily_by_default():
    from segpipe.definitions import defs

    schedule = defs().resolve_schedule_def("daily_destination_sync")
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "sync_destinations_job"


def test_the_sample_exports_to_selligent_and_attentive(applied_sample: Deployment):
    from segpipe.ingest.filenames import delivery_of

    sample = applied_sample  # run once for the session: exit 2, the sample's bad files
    exports = sample.data.exports
    members = pl.read_csv(
        exports / "selligent" / "Monthly_Newsletter_Opt-In" / "members.csv", infer_schema=False
    )
    assert members.columns == ["external_id", "email", "first_name"]
    assert (
        members.height
        == sample.query(
            "SELECT count(*) AS n FROM segment_members JOIN segments USING (segment_id) "
            "JOIN constituents USING (cons_id) "
            "WHERE name = 'Monthly Newsletter Opt-In' AND external_id IS NOT NULL"
        )["n"][0]
    )
    deliveries = sorted((exports / "attentive").glob("*.csv"))
    assert [delivery_of(p.name).domain for p in deliveries] == ["sirendenim"]
    rows = pl.read_csv(deliveries[0], has_header=False, new_columns=["phone", "segment"])
    assert rows["phone"].cast(pl.String).str.contains(r"^(\d{10}|\+\d{8,15})$").all()


def test_attentive_exports_are_accepted_by_segpipes_own_subscriber_upload(
    applied_sample: Deployment, tmp_path
):
    from segpipe_tests.conftest import deployment_at

    sample = applied_sample
    (delivery,) = sorted((sample.data.exports / "attentive").glob("*.csv"))
    sent = pl.read_csv(
        delivery, has_header=False, new_columns=["phone", "segment"], infer_schema=False
    )
    opted_in = set(
        sample.query("SELECT phone FROM constituents WHERE sms_opt_in")["phone"].to_list()
    )

    # A second deployment with the same people receives the file as Attentive would send it.
    with deployment_at(tmp_path / "receiver") as receiver:
        for path in sorted((SAMPLE / "inbox").glob("constituents_*.csv")):
            receiver.drop(path.name, path.read_bytes())
        receiver.drop(delivery.name, delivery.read_bytes())
        code, printed = receiver.run()
        assert code == 0, printed
        upload = receiver.upload(delivery.name)
        assert upload["kind"] == "subscriber_segment" and upload["status"] == "applied"
        assert (upload["rows_in"], upload["rows_rejected"]) == (sent.height, 0)
        received = receiver.query(
            "SELECT c.phone, s.name AS segment FROM segment_members m "
            "JOIN segments s USING (segment_id) JOIN constituents c USING (cons_id) "
            "WHERE s.kind = 'subscriber'"
        )
    e164 = sent.with_columns(
        phone=pl.when(pl.col("phone").str.len_chars() == 10)
        .then("+1" + pl.col("phone"))
        .otherwise(pl.col("phone"))
    )
    expected = {row for row in e164.rows() if row[0] in opted_in}
    assert expected and set(received.rows()) == expected
