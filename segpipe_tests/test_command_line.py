"""`segpipe` as a user types it: what status, members and run print, and their exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from segpipe import cli
from segpipe_tests.conftest import Deployment, copy_of, csv


def _status(deployment: Deployment, capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    assert cli.main(["status", "--data-dir", str(deployment.data.root)]) == 0
    return capsys.readouterr().out


def test_status_shows_a_file_with_an_old_mtime_that_was_run_last(
    applied_sample: Deployment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    deployment = copy_of(applied_sample, tmp_path / "deployment", monkeypatch)
    for n in range(3):  # more uploads than status lists (20): the sample has 18
        deployment.drop(f"constituents_more_{n}.csv", csv("email", f"p{n}@example.org"))
    assert deployment.run()[0] == 0
    # Written a day before any other file (an old export found in a folder), run just now.
    old = "constituents_found_in_a_drawer.csv"
    deployment.drop(old, csv("email", "late@example.org"), arrival=-86_400)
    assert deployment.run()[0] == 0

    uploads = _status(deployment, capsys).split("\nSegments")[0]
    assert old in uploads
    # Listed last: the most recently settled, whatever its mtime says.
    assert uploads.rstrip().splitlines()[-2].strip().startswith(old)
