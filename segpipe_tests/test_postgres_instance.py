"""segpipe on Dagster's Postgres instance storage: a real PostgreSQL server (Debian's
`postgresql`, a cluster of our own in a temporary folder on a free loopback port), the shipped
segpipe/dagster-postgres.yaml driven by DAGSTER_PG_* variables, `segpipe run` as a user runs it,
and a second run queueing on the `duckdb` pool while the first holds the warehouse."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from segpipe_tests.conftest import REPO

# a PostgreSQL server of its own and `segpipe run` processes.
pytestmark = pytest.mark.e2e

TEMPLATE = REPO / "segpipe" / "dagster-postgres.yaml"
SEGMENTS_YAML = """\
segments:
  - name: Californians
    all:
      - {attribute: state, op: eq, value: CA}
"""
BLOCKED = "Step blocked by limit for pool duckdb"


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql (Debian)")
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Postgres:
    port: int
    tools: Path
    as_user: list[str]
    user: str = "segpipe"

    def run(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.tools / tool), *args]
        subprocess.run(command, check=True, capture_output=True)

    def database(self, name: str) -> dict[str, str]:
        """A new, empty database: the DAGSTER_PG_* variables that point at it."""
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": name,
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": "unused-trust-auth",
        }


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server of the test's own, stopped and removed afterwards. PostgreSQL
    refuses to run as root, so as root it runs as the `postgres` system user."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    cluster = Path(tempfile.mkdtemp(prefix="segpipe-pg-"))
    if as_user:
        shutil.chown(cluster, "postgres", "postgres")
    server = Postgres(free_port(), postgres_bin(), as_user)
    data = cluster / "data"
    server.run("initdb", "-D", str(data), "-U", server.user, "-A", "trust", "--no-sync")
    options = f"-p {server.port} -k {cluster} -c listen_addresses=127.0.0.1 -c fsync=off"
    server.run("pg_ctl", "-D", str(data), "-o", options, "-l", str(cluster / "log"), "-w", "start")
    try:
        yield server
    finally:
        server.run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(cluster, ignore_errors=True)


@pytest.fixture
def deployment_env(tmp_path: Path, postgres: Postgres, monkeypatch: pytest.MonkeyPatch):
    """A data directory whose Dagster home holds the Postgres template, and a warehouse kept
    outside the data directory through SEGPIPE_WAREHOUSE."""
    data, home = tmp_path / "deployment", tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(TEMPLATE, home / "dagster.yaml")
    # Each test its own instance database: run history from another test never leaks in.
    env = {
        **postgres.database(f"dagster_{tmp_path.name.lower()[-40:]}".replace("-", "_")),
        "DAGSTER_HOME": str(home),
        "SEGPIPE_DATA_DIR": str(data),
        "SEGPIPE_WAREHOUSE": str(tmp_path / "shared" / "audiences.duckdb"),
    }
    (tmp_path / "shared").mkdir()
    (data / "inbox").mkdir(parents=True)
    (data / "segments.yaml").write_text(SEGMENTS_YAML)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def constituents(rows: int) -> bytes:
    """A Luminate-style constituent export: header in Luminate's own names, CRLF endings."""
    people = pl.DataFrame({"n": range(1, rows + 1)}).select(
        MEMBER_ID=pl.format("M-{}", pl.col("n") + 5000),
        PRIMARY_EMAIL=pl.format("donor{}@example.org", pl.col("n")),
        FIRST_NAME=pl.lit("Pat"),
        STATE=pl.lit("CA"),
    )
    return people.write_csv(line_terminator="\r\n").encode()


def segpipe_run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "segpipe"), "run"],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_segpipe_run_keeps_its_runs_and_events_in_postgres(deployment_env, tmp_path: Path):
    inbox = Path(deployment_env["SEGPIPE_DATA_DIR"]) / "inbox"
    (inbox / "constituents_2026-11-01.csv").write_bytes(constituents(50))

    done = segpipe_run(deployment_env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Californians" in done.stdout
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        jobs = {run.job_name for run in instance.get_runs()}
        assert jobs == {"process_upload_job", "refresh_segments_job"}  # no destinations configured
        segments = instance.fetch_materializations(dg.AssetKey("segments"), limit=1).records
        assert segments[0].asset_materialization.metadata["dagster/row_count"].value == 50
    # The warehouse is where SEGPIPE_WAREHOUSE put it, not in the data directory.
    assert (tmp_path / "shared" / "audiences.duckdb").exists()
    assert not (Path(deployment_env["SEGPIPE_DATA_DIR"]) / "warehouse.duckdb").exists()


def test_a_second_run_queues_on_the_duckdb_pool_while_the_first_writes(deployment_env):
    inbox = Path(deployment_env["SEGPIPE_DATA_DIR"]) / "inbox"
    # Big enough that applying it holds the pool's slot for a few seconds.
    (inbox / "constituents_2026-11-01.csv").write_bytes(constituents(400_000))
    from segpipe.definitions import defs

    # Loaded before the first run starts, so the second starts the moment the first writes.
    refresh = defs().resolve_job_def("refresh_segments_job")
    first: dict[str, subprocess.CompletedProcess] = {}
    runner = threading.Thread(target=lambda: first.update(done=segpipe_run(deployment_env)))
    runner.start()
    with dg.DagsterInstance.get() as instance:
        _wait_for_upload_step(instance, runner)
        # A refresh started while the upload holds the warehouse: a second, concurrent run.
        second = refresh.execute_in_process(instance=instance, raise_on_error=False)
        runner.join(timeout=600)
        assert first["done"].returncode == 0, first["done"].stdout + first["done"].stderr
        assert second.success
        blocked = [e for e in second.all_events if e.message and e.message.startswith(BLOCKED)]
        assert blocked, "the second run never waited for the duckdb pool"
        (upload_run,) = instance.get_runs(dg.RunsFilter(job_name="process_upload_job"))
        upload_end = instance.get_run_stats(upload_run.run_id).end_time
        # It waited, then refreshed after the upload applied: it saw every new person.
        assert second.dagster_run.run_id != upload_run.run_id
        sizes = second.asset_materializations_for_node("segments")[0].metadata
        assert sizes["dagster/row_count"].value == 400_000
        assert instance.get_run_stats(second.dagster_run.run_id).end_time > upload_end


def _wait_for_upload_step(instance: dg.DagsterInstance, runner: threading.Thread) -> None:
    """Until the first run's upload step has started (it then holds the duckdb slot)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and runner.is_alive():
        for run in instance.get_runs(dg.RunsFilter(job_name="process_upload_job")):
            started = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
            if started:
                return
        time.sleep(0.2)
    pytest.fail("the first run's upload step never started")
