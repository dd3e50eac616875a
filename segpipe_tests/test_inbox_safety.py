"""Issue 20, items 3, 4 and 9: only regular, settled files are taken from the inbox, moved
safely across file systems, and their names printed escaped."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from segpipe.ingest.receive import NOT_REGULAR
from segpipe_tests.conftest import Deployment, csv

PEOPLE = csv(
    "member_id,email,phone,first_name,email_opt_in,sms_opt_in",
    "1,ana@example.org,202-555-0101,Ana,yes,yes",
    "2,ben@example.org,202-555-0102,Ben,yes,yes",
)


def test_symlinks_fifos_and_folders_are_refused_once_and_never_read(
    deployment: Deployment, tmp_path: Path
):
    secret = tmp_path / "secret.csv"
    secret.write_text("email,salary\nceo@example.org,900000\n")
    inbox = deployment.data.inbox
    os.symlink("/etc/passwd", inbox / "x_subscriber_segment_20261201.csv")
    os.symlink(secret, inbox / "constituents_o.csv")
    os.mkfifo(inbox / "events_pipe.csv")  # reading it would block the run for good
    (inbox / "manual_segment_folder.csv").mkdir()
    deployment.drop("constituents_a.csv", PEOPLE)

    code, printed = deployment.run()

    # Exit 2, as for a rejected file: a cron job learns that something sent was not taken.
    assert code == 2, printed
    assert "segpipe: 4 inbox entr(ies) refused, not regular files; see above" in printed
    for name, what in [
        ("x_subscriber_segment_20261201.csv", "a symbolic link"),
        ("constituents_o.csv", "a symbolic link"),
        ("events_pipe.csv", "a named pipe"),
        ("manual_segment_folder.csv", "a folder"),
    ]:
        assert f"refused inbox/{name}: {what}, not a regular file" in printed
    assert deployment.query("SELECT file_name FROM uploads")["file_name"].to_list() == [
        "constituents_a.csv"
    ]
    columns = deployment.query("DESCRIBE constituents")["column_name"].to_list()
    assert "salary" not in columns
    reports = "".join(p.read_text() for p in deployment.data.rejected.glob("*.csv"))
    assert "root:" not in reports and "ceo@" not in reports
    assert list(inbox.iterdir()) == []
    assert len(list((deployment.data.rejected / NOT_REGULAR).iterdir())) == 4
    assert secret.read_text().startswith("email,salary")  # the target is left as it was

    code, printed = deployment.run()  # reported once, not at every run
    assert "refused" not in printed and code == 0


WRITER = """
import sys, time
path, rows = sys.argv[1], int(sys.argv[2])
with open(path, "w") as out:
    out.write("member_id,email,email_opt_in\\n")
    for start in range(0, rows, 2_000):
        out.writelines(f"{i + 10},p{i}@example.org,yes\\n" for i in range(start, start + 2_000))
        out.flush()
        time.sleep(0.2)
"""


def test_a_file_still_being_written_is_taken_only_once_settled(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SEGPIPE_SETTLE_SECONDS", "1")
    # 50 slices of 2,000 rows, 0.2 s apart: 10 s of writing, longer than the run takes to look
    rows = 100_000
    path = deployment.data.inbox / "constituents_growing.csv"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(rows)])
    try:
        while not path.exists() or path.stat().st_size == 0:
            time.sleep(0.05)

        code, printed = deployment.run()
    finally:
        writer.wait(60)

    assert code == 0, printed
    assert "waiting for file(s) still being written: constituents_growing.csv" in printed
    upload = deployment.upload("constituents_growing.csv")
    assert (upload["rows_in"], upload["rows_applied"]) == (rows, rows)


def test_an_inbox_on_another_file_system_is_copied_verified_then_removed(
    deployment: Deployment,
):
    # RAM or the disk, whichever the deployment is not on (`make test` may put it in RAM).
    there = os.stat(deployment.data.archive).st_dev
    others = [
        d for d in (Path("/dev/shm"), Path("/var/tmp")) if d.is_dir() and os.stat(d).st_dev != there
    ]
    assert others, "neither /dev/shm nor /var/tmp is on another file system than the deployment"
    with tempfile.TemporaryDirectory(dir=others[0]) as elsewhere:
        inbox = deployment.data.inbox
        inbox.rmdir()
        inbox.symlink_to(elsewhere, target_is_directory=True)
        assert os.stat(elsewhere).st_dev != os.stat(deployment.data.archive).st_dev
        sent = deployment.drop("constituents_a.csv", PEOPLE)
        mtime = sent.stat().st_mtime_ns

        code, printed = deployment.run()

        assert code == 0, printed
        assert list(Path(elsewhere).iterdir()) == []
        upload = deployment.upload("constituents_a.csv")
        archived = deployment.data.archive / upload["upload_id"] / "constituents_a.csv"
        assert archived.read_bytes() == PEOPLE.encode()
        assert not archived.is_symlink()
        assert upload["sha256"] == hashlib.sha256(PEOPLE.encode()).hexdigest()
        assert archived.stat().st_mtime_ns == mtime


def test_file_names_are_printed_escaped(deployment: Deployment):
    deployment.drop("constituents_\x1b[2J\x1b[31mred\nsegpipe: all good.csv", PEOPLE)

    code, printed = deployment.run()

    assert "\x1b" not in printed
    assert "constituents_\\x1b[2J\\x1b[31mred\\nsegpipe: all good.csv" in printed
    assert "\nsegpipe: all good" not in printed
