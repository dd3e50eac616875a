"""`make test` on a machine without the system packages the tests drive: it installs them as
root, and otherwise stops at once with one line naming them (never a wall of tracebacks)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from segpipe_tests.conftest import REPO

# As if Chromium and PostgreSQL were not installed.
MISSING = ["CHROMIUM=/nonexistent/chromium", "POSTGRES_INITDB=/nonexistent/initdb"]


def make(*args: str) -> subprocess.CompletedProcess:
    command = ["make", "--no-print-directory", "-C", str(REPO), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_as_a_user_it_stops_before_pytest_with_one_line_saying_what_to_install():
    done = make("test", *MISSING, "AS_ROOT=")

    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "apt-get install chromium postgresql" in line


def test_nothing_missing_means_nothing_to_install():
    planned = make("--dry-run", "test", "CHROMIUM=/bin/sh", "POSTGRES_INITDB=/bin/sh", "AS_ROOT=")

    assert planned.returncode == 0, planned.stderr
    assert not any("apt-get" in line for line in planned.stdout.splitlines())


def test_as_root_it_installs_the_missing_packages_before_running_the_tests():
    planned = make("--dry-run", "test", *MISSING, "AS_ROOT=0").stdout.splitlines()

    install = next(i for i, line in enumerate(planned) if "install -y" in line)
    assert planned[install].endswith("install -y chromium postgresql")
    assert "apt-get" in planned[install] and "update" in planned[install]
    (pytest,) = [i for i, line in enumerate(planned) if ".venv/bin/pytest -q" in line]
    assert pytest > install


def _pytest_line(*args: str) -> str:
    installed = ("CHROMIUM=/bin/sh", "POSTGRES_INITDB=/bin/sh", "SSHD=/bin/sh")
    planned = make("--dry-run", "test", *installed, *args)
    (line,) = [line for line in planned.stdout.splitlines() if ".venv/bin/pytest -q" in line]
    return line


def test_the_tests_files_go_to_ram_when_it_has_room():
    room = Path("/dev/shm").is_dir() and shutil.disk_usage("/dev/shm").free >= 4 * 1024**3
    assert _pytest_line().startswith("TMPDIR=/dev/shm ") == room
    assert _pytest_line("TEST_TMPDIR=").startswith(".venv/bin/pytest -q")
