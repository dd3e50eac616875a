"""Warnings by email and webhook, against a local SMTP server (aiosmtpd) and a local HTTP
endpoint, both on loopback and started here (issue 21)."""

from __future__ import annotations

import email
import json
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from segpipe.notify.settings import SMTP_FROM_ENV, SMTP_HOST_ENV, SMTP_PORT_ENV
from segpipe_tests.conftest import Deployment, csv
from segpipe_tests.sftp_server import free_port


class Mailbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self):
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [m["Subject"] for _, m in self.messages]

    def body(self, subject_part: str) -> tuple[list[str], str]:
        (found,) = [(to, m) for to, m in self.messages if subject_part in m["Subject"]]
        return found[0], found[1].get_payload(decode=True).decode()


@pytest.fixture
def mailbox():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture
def webhook():
    calls: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append({"path": self.path, "json": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield calls, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


PEOPLE = csv(
    "email,phone,first_name,sms_opt_in,email_opt_in",
    "a@example.org,+12025550101,Ann,y,y",
    "b@example.org,+12025550102,Bob,y,y",
    "c@example.org,+12025550103,Cy,y,y",
    "d@example.org,+12025550104,Dee,y,y",
)
VIPS = csv("segment,email", *[f"VIP list,{n}@example.org" for n in ("a", "b", "c", "d")])


def _configure(deployment: Deployment, smtp_port: int, hook: str, destination: str = "") -> None:
    deployment.data.segments_yaml.write_text(
        f"""warnings:
  email: [data-team@example.org]
  webhook: {hook}
  smtp: {{host: 127.0.0.1, port: {smtp_port}, from: segpipe@example.org}}
destinations:
  - name: selligent
    key: email
    fields: [first_name]
    segments: [VIP list]
    warnings: {{email: [crm-owner@example.org], export_ready: true}}
{destination}"""
    )


def _no_people_in(text: str) -> None:
    for name in ("a", "b", "c", "d", "jane"):
        assert f"{name}@example.org" not in text
    assert "2025550101" not in text and "5550101" not in text


def test_a_failed_sync_sends_an_email_and_calls_the_webhook(
    deployment: Deployment, mailbox, webhook
):
    box, smtp_port = mailbox
    calls, hook = webhook
    _configure(deployment, smtp_port, hook)
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    deployment.drop("manual_segment_2026-11-01.csv", VIPS)
    # The destination's export folder cannot be created: a file stands where it should be.
    (deployment.data.exports / "selligent").write_text("not a folder")
    code, printed = deployment.run()
    assert code == 1, printed
    assert "warning message(s) sent" in printed

    to, body = box.body("sync failed for destination selligent")
    assert sorted(to) == ["crm-owner@example.org", "data-team@example.org"]
    assert "File exists" in body and "selligent" in body
    (message,) = [m for _, m in box.messages if "sync failed" in m["Subject"]]
    assert message["From"] == "segpipe@example.org"
    (call,) = [c["json"] for c in calls if c["json"]["kind"] == "sync_failed"]
    assert call["destination"] == "selligent" and "File exists" in call["text"]
    assert call["subject"] == "sync failed for destination selligent"
    assert not any("export ready" in s for s in box.subjects())  # nothing was exported
    for _, message in box.messages:
        _no_people_in(message.as_string())
    _no_people_in(json.dumps(calls))


def test_a_destination_naming_a_missing_segment_is_warned_as_its_own_sync_failure(
    deployment: Deployment, mailbox, webhook
):
    """As Census and Hightouch fail only the sync whose model is gone: selligent's recipients
    hear which segment it names that does not exist, and its existing segment still exports."""
    box, smtp_port = mailbox
    calls, hook = webhook
    _configure(deployment, smtp_port, hook)
    yaml = deployment.data.segments_yaml
    yaml.write_text(yaml.read_text().replace("[VIP list]", "[VIP list, Gone list]"))
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    deployment.drop("manual_segment_2026-11-01.csv", VIPS)
    code, printed = deployment.run()
    assert code == 2, printed

    to, body = box.body("sync failed for destination selligent")
    assert sorted(to) == ["crm-owner@example.org", "data-team@example.org"]
    assert "segment(s) 'Gone list' not found" in body
    (call,) = [c["json"] for c in calls if c["json"]["kind"] == "sync_failed"]
    assert call["destination"] == "selligent" and "'Gone list' not found" in call["text"]
    to, body = box.body("export ready for destination selligent")
    assert "1 segment(s): 4 member(s), 4 add(s)" in body


def test_rejected_files_size_moves_and_ready_exports_are_told_masked(
    deployment: Deployment, mailbox, monkeypatch, webhook
):
    box, smtp_port = mailbox
    calls, hook = webhook
    _configure(deployment, smtp_port, hook)
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    deployment.drop("manual_segment_2026-11-01.csv", VIPS)
    # A file whose name carries a person's address, rejected whole (no email column).
    deployment.drop("constituents_from_jane@example.org.csv", csv("first_name", "Jane"))
    code, printed = deployment.run()
    assert code == 2, printed

    to, body = box.body("1 file(s) rejected")
    assert to == ["data-team@example.org"]  # not a destination's business
    # The name is masked like any address (the whole local part goes), the reason is kept.
    assert "c***@example.org.csv: missing required column" in body and "jane" not in body
    to, body = box.body("export ready for destination selligent")
    assert to == ["crm-owner@example.org"]  # only who asked for it (export_ready: true)
    assert "1 segment(s): 4 member(s), 4 add(s), 0 remove(s)" in body

    # Three of four leave the segment: its size moved by 75% (> 50%), the size check warns.
    box.messages.clear()
    leave = csv("segment,email,action", *[f"VIP list,{n}@example.org,remove" for n in "abc"])
    deployment.drop("manual_segment_2026-11-02.csv", leave)
    code, printed = deployment.run()
    assert code == 0, printed
    to, body = box.body("segment(s) changed size by more than 50%")
    assert to == ["data-team@example.org"]
    assert "VIP list" in body and "| 4 | 1 |" in body
    # The global webhook hears of problems; export_ready was asked for by selligent's owner only.
    assert [c["json"]["kind"] for c in calls] == ["file_rejected", "segment_size_moved"]
    for _, message in box.messages:
        _no_people_in(message.as_string())
    _no_people_in(json.dumps(calls))


def test_a_held_delivery_is_told_as_held_not_rejected(deployment: Deployment, mailbox, webhook):
    """A file the removal guard holds waits for a person, unlike a rejected one: the warning
    says which it is, with the guard's message (how to release it)."""
    box, smtp_port = mailbox
    calls, hook = webhook
    _configure(deployment, smtp_port, hook)
    phones = [f"415555{n:04d}" for n in range(30)]
    people = [f"p{n}@example.org,+1{phone},y" for n, phone in enumerate(phones)]
    deployment.drop("constituents_2026-11-01.csv", csv("email,phone,sms_opt_in", *people))
    deployment.drop("constituents_2026-11-01b.csv", PEOPLE)
    deployment.drop("manual_segment_2026-11-01.csv", VIPS)  # what selligent is sent
    # Attentive's shape: no header, 10-digit phone and segment name.
    deployment.drop(
        "acme_subscriber_segment_20261101.csv", "".join(f"{p},Fans\r\n" for p in phones)
    )
    assert deployment.run()[0] == 0
    deployment.drop("acme_subscriber_segment_20261102.csv", f"{phones[0]},Fans\r\n")
    code, printed = deployment.run()
    assert code == 2, printed

    to, body = box.body("1 file(s) held")
    assert to == ["data-team@example.org"]
    assert "acme_subscriber_segment_20261102.csv: " in body
    assert "segpipe run --allow-large-removals" in body
    assert not [s for s in box.subjects() if "rejected" in s]
    for _, message in box.messages:
        _no_people_in(message.as_string())


def test_a_failed_delivery_is_warned_with_smtp_settings_from_the_environment(
    deployment: Deployment, mailbox, monkeypatch, webhook
):
    box, smtp_port = mailbox
    monkeypatch.setenv(SMTP_HOST_ENV, "127.0.0.1")
    monkeypatch.setenv(SMTP_PORT_ENV, str(smtp_port))
    monkeypatch.setenv(SMTP_FROM_ENV, "alerts@example.org")
    deployment.data.segments_yaml.write_text(
        """warnings: {email: [data-team@example.org]}
destinations:
  - name: attentive
    format: attentive
    domain: sirendenim
    key: phone
    segments: ["*"]
    deliver: {sftp: {host: 127.0.0.1, username: u, key_file: id_ed25519, path: /uploads,
                     known_hosts: missing_known_hosts}}
"""
    )
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    deployment.drop("manual_segment_2026-11-01.csv", VIPS)
    code, printed = deployment.run()
    assert code == 1, printed
    to, body = box.body("delivery failed for destination attentive")
    assert to == ["data-team@example.org"]
    assert "missing_known_hosts not found" in body
    (message,) = [m for _, m in box.messages]
    assert message["From"] == "alerts@example.org"


def test_the_daemon_warns_through_the_run_failure_sensor(deployment: Deployment, mailbox, webhook):
    from dagster._core.events import DagsterEventType

    from segpipe.definitions import defs
    from segpipe.defs.exports.partitions import current_pairs, register_pairs
    from segpipe.defs.resources import DataDirResource
    from segpipe.defs.warnings.sensors import warn_on_run_failure
    from segpipe.warehouse.connection import connect

    box, smtp_port = mailbox
    calls, hook = webhook
    _configure(deployment, smtp_port, hook)
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    deployment.drop("manual_segment_2026-11-01.csv", VIPS)
    (deployment.data.exports / "selligent").write_text("not a folder")
    assert deployment.run()[0] == 1
    told_by_segpipe_run = len(box.messages)

    def evaluate(instance, run):
        (failure,) = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
        with dg.build_run_status_sensor_context(
            sensor_name="warn_on_run_failure",
            dagster_event=failure.dagster_event,
            dagster_instance=instance,
            dagster_run=run,
            resources={"data_dir": DataDirResource(root=str(deployment.data.root))},
        ) as context:
            return warn_on_run_failure(context.for_run_failure())

    with deployment.instance() as instance:
        (cli_sync,) = instance.get_runs(dg.RunsFilter(job_name="sync_destinations_job"))
        skipped = evaluate(instance, cli_sync)  # segpipe run told them already
        assert "segpipe run" in skipped.skip_message
        assert len(box.messages) == told_by_segpipe_run

        # The same failure in a run the daemon launched (no segpipe run around it).
        with connect(deployment.data.warehouse) as con:
            tags = register_pairs(instance, current_pairs(con, deployment.data))
        result = (
            defs()
            .resolve_job_def("sync_destinations_job")
            .execute_in_process(instance=instance, raise_on_error=False, tags=tags)
        )
        assert not result.success
        outcome = evaluate(instance, instance.get_run_by_id(result.run_id))
    assert "2 warning message(s) sent" in outcome.skip_message  # one email, one webhook call
    to, body = box.messages[-1]
    assert sorted(to) == ["crm-owner@example.org", "data-team@example.org"]
    assert "sync failed for destination selligent" in body["Subject"]
    assert calls[-1]["json"]["kind"] == "sync_failed"


def test_the_daemon_warns_of_a_rejected_file_after_a_successful_upload_run(
    deployment: Deployment, mailbox, webhook
):
    """A rejection is an outcome: the run succeeds, the file's raw_upload says `status`
    rejected, and the run success sensor warns from that key."""
    from dagster._core.events import DagsterEventType

    from segpipe.definitions import defs
    from segpipe.defs.resources import DataDirResource
    from segpipe.defs.uploads.jobs import range_tags
    from segpipe.defs.warnings.sensors import warn_on_run_success
    from segpipe.runner import pending_uploads

    box, smtp_port = mailbox
    calls, hook = webhook
    _configure(deployment, smtp_port, hook)
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    deployment.drop("manual_segment_2026-11-01.csv", VIPS)
    assert deployment.run()[0] == 0
    deployment.drop("constituents_2026-11-02.csv", csv("first_name", "Jane"))
    box.messages.clear()

    with deployment.instance() as instance:
        # The run the inbox sensor would launch (no segpipe run around it to warn).
        (pending,) = pending_uploads(deployment.data)
        instance.add_dynamic_partitions("uploads", [pending])
        result = (
            defs()
            .resolve_job_def("process_upload_job")
            .execute_in_process(instance=instance, tags=range_tags(pending, pending))
        )
        assert result.success
        (raw,) = [
            m.metadata
            for m in result.asset_materializations_for_node("process_uploads")
            if m.asset_key == dg.AssetKey("raw_upload")
        ]
        assert raw["status"].value == "rejected"
        assert raw["problem"].value.startswith("missing required column")
        (success,) = instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_SUCCESS)
        with dg.build_run_status_sensor_context(
            sensor_name="warn_on_run_success",
            dagster_event=success.dagster_event,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            resources={"data_dir": DataDirResource(root=str(deployment.data.root))},
        ) as context:
            outcome = warn_on_run_success(context)
    assert "2 warning message(s) sent" in outcome.skip_message  # one email, one webhook call
    to, body = box.body("1 file(s) rejected")
    assert to == ["data-team@example.org"]
    assert "constituents_2026-11-02.csv: missing required column" in body
    assert calls[-1]["json"]["kind"] == "file_rejected"


def test_messages_mask_every_email_and_phone_but_not_dates_in_file_names():
    from segpipe.ingest.normalize import mask_text

    text = (
        "row for Jane.Doe@Example.org, +12025550123, 202-555-0124, (202) 555 0125, +447911123456 "
        "in sirendenim_subscriber_segment_20261102_1.csv at 2026-11-02T09:00:00 (3 rows)"
    )
    assert mask_text(text) == (
        "row for J***@Example.org, ***-***-0123, ***-***-0124, ***-***-0125, ***-***-3456 "
        "in sirendenim_subscriber_segment_20261102_1.csv at 2026-11-02T09:00:00 (3 rows)"
    )
