"""SFTP delivery through `segpipe run`, against a real OpenSSH server on loopback (issue 21)."""

from __future__ import annotations

import re

import dagster as dg
import polars as pl
import pytest

from segpipe.ingest.receive import sha256_of
from segpipe_tests.conftest import Deployment, csv
from segpipe_tests.sftp_server import Proxy, SftpServer, free_port, sftp_server

PEOPLE = 3000  # an attentive file of ~60 KB: larger than where the proxy cuts


@pytest.fixture
def server(tmp_path):
    with sftp_server(tmp_path / "sftp") as running:
        yield running


@pytest.fixture
def proxy(server: SftpServer):
    running = Proxy(upstream=server.port).start()
    yield running
    running.stop()


def _people(deployment: Deployment, count: int = PEOPLE, day: int = 1) -> None:
    rows = [f"p{i}@example.org,+1202555{i:04d},y,y" for i in range(count)]
    deployment.drop(
        f"constituents_2026-11-{day:02d}.csv", csv("email,phone,sms_opt_in,email_opt_in", *rows)
    )
    deployment.drop(
        f"manual_segment_2026-11-{day:02d}.csv",
        csv("segment,email", *[f"VIP list,p{i}@example.org" for i in range(count)]),
    )


def _configure(
    deployment: Deployment,
    server: SftpServer,
    port: int,
    *,
    destination: str = "{name: attentive, format: attentive, domain: sirendenim, key: phone",
    known_hosts: str | None = None,
) -> None:
    known = deployment.data.root / "known_hosts"
    known.write_text(
        known_hosts
        if known_hosts is not None
        else server.known_hosts_line() + server.known_hosts_line(port)
    )
    deployment.data.segments_yaml.write_text(
        f"""destinations:
  - {destination}, segments: ["*"],
     deliver: {{sftp: {{host: 127.0.0.1, port: {port}, username: {server.username},
       key_file: {server.client_key}, known_hosts: known_hosts,
       path: {server.folder}/uploads, attempts: 3, backoff_seconds: 0.1, timeout_seconds: 60}}}}}}
"""
    )


def _deliveries(deployment: Deployment) -> pl.DataFrame:
    return deployment.query('SELECT * FROM deliveries ORDER BY "at", file')


def _attentive_file(deployment: Deployment):
    (local,) = sorted((deployment.data.exports / "attentive").glob("*.csv"))
    return local


@pytest.mark.e2e  # an OpenSSH server of its own
def test_attentive_files_land_on_the_sftp_server_and_are_not_sent_again(
    deployment: Deployment, server: SftpServer
):
    _configure(deployment, server, server.port)
    _people(deployment)
    code, printed = deployment.run()
    assert code == 0, printed

    local = _attentive_file(deployment)
    remote = server.folder / "uploads" / local.name
    assert remote.read_bytes() == local.read_bytes()
    assert len(remote.read_text().splitlines()) == PEOPLE
    assert sorted(p.name for p in remote.parent.iterdir()) == [local.name]  # no .partial left
    rows = _deliveries(deployment)
    assert rows.select("destination", "file", "bytes", "sha256", "status", "error").rows() == [
        ("attentive", str(remote), local.stat().st_size, sha256_of(local), "delivered", None)
    ]
    assert f"delivered attentive to sftp://{server.username}@127.0.0.1" in printed

    with deployment.instance() as instance:
        (record,) = instance.fetch_materializations(dg.AssetKey("deliveries"), limit=5).records
    materialization = record.asset_materialization
    assert materialization.partition == "attentive"
    assert materialization.metadata["files_delivered"].value == 1
    assert materialization.metadata["bytes_delivered"].value == local.stat().st_size

    # The next run syncs the same lists again: the server already has them, nothing is sent.
    before = remote.stat()
    code, printed = deployment.run()
    assert code == 0, printed
    assert _deliveries(deployment).height == 1
    assert (remote.stat().st_ino, remote.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "0 file(s) sent, 1 already there" in printed


@pytest.mark.e2e  # an OpenSSH server of its own
def test_a_connection_cut_mid_file_is_retried_and_nobody_sees_half_a_file(
    deployment: Deployment, server: SftpServer, proxy: Proxy
):
    seen_at_cut = []
    proxy.cut_after, proxy.on_cut = (
        30_000,
        lambda: seen_at_cut.append(sorted(p.name for p in (server.folder / "uploads").iterdir())),
    )
    _configure(deployment, server, proxy.port)
    _people(deployment)
    code, printed = deployment.run()
    assert code == 0, printed

    local = _attentive_file(deployment)
    # At the cut, only the temporary name existed, partly written: never the final name.
    assert seen_at_cut == [[f".{local.name}.partial"]]
    remote = server.folder / "uploads" / local.name
    assert remote.read_bytes() == local.read_bytes()
    assert proxy.connections == 2 and proxy.cut == 1
    (row,) = _deliveries(deployment).rows(named=True)
    assert (row["status"], row["attempts"]) == ("delivered", 2)

    connections = proxy.connections
    assert deployment.run()[0] == 0
    assert proxy.connections == connections  # nothing to send: no connection at all
    assert _deliveries(deployment).height == 1


@pytest.mark.e2e  # an OpenSSH server of its own
def test_a_failed_delivery_holds_the_csv_sync_and_is_sent_by_the_next_run(
    deployment: Deployment, server: SftpServer, proxy: Proxy
):
    proxy.refuse = True
    destination = "{name: crm, format: csv, key: email"
    _configure(deployment, server, proxy.port, destination=destination)
    _people(deployment, count=3)
    code, printed = deployment.run()
    assert code == 1, printed
    assert proxy.connections == 3, printed  # three attempts within the run
    assert "run failed" in printed and "crm" in printed
    failed = _deliveries(deployment)
    assert set(failed["status"]) == {"failed"} and failed.height == 3  # members, adds, removes
    # The one masking rule takes `user@host` for an address: the user is masked, the host stays.
    assert f"***@127.0.0.1:{proxy.port}" in failed["error"][0]
    assert not (server.folder / "uploads").exists()

    # A fourth person enters before the server is back: the sync of crm waits, so the first
    # sync's adds (three people) reach the server before any later diff.
    proxy.refuse = False
    # Opted in to email: the crm destination (key email) sends only people with consent.
    deployment.drop("constituents_2026-11-05.csv", csv("email,email_opt_in", "new@example.org,y"))
    deployment.drop(
        "manual_segment_2026-11-05.csv", csv("segment,email", "VIP list,new@example.org")
    )
    code, printed = deployment.run()
    assert code == 0, printed
    assert "held crm" in printed
    adds = server.folder / "uploads" / "VIP_list" / "adds.csv"
    assert pl.read_csv(adds)["email"].to_list() == [f"p{i}@example.org" for i in range(3)]

    code, printed = deployment.run()
    assert code == 0, printed
    assert pl.read_csv(adds)["email"].to_list() == ["new@example.org"]
    members = pl.read_csv(server.folder / "uploads" / "VIP_list" / "members.csv")
    assert members.height == 4


@pytest.mark.e2e  # an OpenSSH server of its own
def test_an_unknown_host_key_is_refused_without_retrying(
    deployment: Deployment, server: SftpServer, tmp_path
):
    with sftp_server(tmp_path / "impostor") as impostor:
        # known_hosts holds the real server's key; the impostor answers on the configured port.
        _configure(
            deployment, impostor, impostor.port, known_hosts=server.known_hosts_line(impostor.port)
        )
        _people(deployment, count=3)
        code, printed = deployment.run()
    assert code == 1, printed
    (row,) = _deliveries(deployment).rows(named=True)
    assert row["status"] == "failed" and row["attempts"] == 1
    assert "Host key" in row["error"] or "host key" in row["error"]
    assert not (impostor.folder / "uploads").exists()


@pytest.mark.e2e  # an OpenSSH server of its own
def test_an_unlisted_host_is_refused_naming_known_hosts(deployment: Deployment, server):
    _configure(deployment, server, server.port, known_hosts="")
    _people(deployment, count=3)
    code, printed = deployment.run()
    assert code == 1, printed
    (row,) = _deliveries(deployment).rows(named=True)
    assert "is not in" in row["error"] and "known_hosts" in row["error"]
    assert not (server.folder / "uploads").exists()


def test_delivery_settings_are_checked_when_segments_yaml_is_read(tmp_path):
    from segpipe.exports.destinations import DestinationError, load_destinations

    path = tmp_path / "segments.yaml"
    bad = {
        "{host: h, username: u, path: /up}": "one of `key_file` or `password_env`",
        "{host: h, username: u, path: up, key_file: k}": "absolute folder",
        "{host: h, path: /up, key_file: k}": "needs username",
        "{host: h, username: u, path: /up, key_file: k, trust: all}": "unknown setting(s) trust",
    }
    for sftp, message in bad.items():
        entry = f"{{name: a, key: email, segments: ['*'], deliver: {{sftp: {sftp}}}}}"
        path.write_text(f"destinations:\n  - {entry}\n")
        with pytest.raises(DestinationError, match=re.escape(message)):
            load_destinations(path)
    path.write_text(
        "destinations:\n  - {name: a, key: email, segments: ['*'],\n"
        "     deliver: {sftp: {host: h, username: u, path: /up/, password_env: SFTP_PASSWORD}}}\n"
    )
    (destination,) = load_destinations(path)
    assert destination.deliver.address == "sftp://u@h:22/up"
    assert destination.deliver.known_hosts == "~/.ssh/known_hosts"


@pytest.mark.e2e  # an OpenSSH server of its own
def test_a_closed_port_fails_after_every_attempt(deployment: Deployment, server: SftpServer):
    port = free_port()  # nothing listens there
    _configure(deployment, server, port)
    _people(deployment, count=3)
    code, printed = deployment.run()
    assert code == 1, printed
    (row,) = _deliveries(deployment).rows(named=True)
    assert (row["status"], row["attempts"]) == ("failed", 3)
