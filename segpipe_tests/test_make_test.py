"""`make test` on a machine without the system packages the tests drive: it installs them as
root, and otherwise stops at once with one line naming them (never a wall of tracebacks)."""

from __future__ import annotations

import os
import subprocess

from segpipe_tests.conftest import REPO

# As if Chromium and PostgreSQL were not installed.
MISSING = ["CHROMIUM=/nonexistent/chromium", "POSTGRES_INITDB=/nonexistent/initdb"]


def make(*args: str, as_nobody: bool = False) -> subprocess.CompletedProcess:
    command = ["make", "--no-print-directory", "-C", str(REPO), *args]
    if as_nobody and os.geteuid() == 0:
        command = ["runuser", "-u", "nobody", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_without_root_it_stops_before_pytest_with_one_line_saying_what_to_install():
    done = make("test", *MISSING, as_nobody=True)

    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "apt-get install chromium postgresql" in line


def test_as_root_it_installs_the_missing_packages_before_running_the_tests():
    planned = make("--dry-run", "test", *MISSING).stdout.splitlines()

    if os.geteuid() != 0:  # a dry run as a user plans nothing: make stops at once
        assert planned == []
        return
    install = next(i for i, line in enumerate(planned) if "install -y" in line)
    assert planned[install].endswith("install -y chromium postgresql")
    assert "apt-get" in planned[install] and "update" in planned[install]
    assert planned.index(".venv/bin/pytest -q") > install
