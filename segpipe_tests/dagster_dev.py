"""A real `dagster dev` (webserver + daemon) on a temporary home and data directory, for the
end-to-end and browser tests."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from segpipe.config import DATA_DIR_ENV, DataDir
from segpipe.defs.instance import DAGSTER_SETTINGS, segpipe_home

REPO = Path(__file__).resolve().parent.parent
DAGSTER = REPO / ".venv" / "bin" / "dagster"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _default_signals() -> None:
    # A process started in the background inherits SIGINT/SIGTERM ignored; `dagster dev` would
    # then never shut down on them and leave its webserver, daemon and code servers behind.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class DagsterDev:
    process: subprocess.Popen
    url: str
    data: DataDir
    log: Path

    def graphql(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert "errors" not in answer, answer["errors"]
        return answer["data"]

    def wait_for(self, what: str, probe, timeout: float = 180, every: float = 0.5):
        """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"dagster dev exited:\n{self.tail()}"
            found = probe()
            if found:
                return found
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what}\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def runs(self) -> list[dict]:
        data = self.graphql(
            """{ runsOrError { ... on Runs { results {
                 runId jobName status startTime endTime
                 tags { key value } assetSelection { path } } } } }"""
        )
        return data["runsOrError"]["results"]

    def idle(self) -> list[dict] | None:
        """All runs when none is queued or going, else None."""
        runs = self.runs()
        return runs if runs and all(r["status"] in FINISHED for r in runs) else None


def start(root: Path) -> DagsterDev:
    home, data = segpipe_home(root / "dagster_home"), DataDir(root / "data").ensure()
    port = free_port()
    log = root / "dagster_dev.log"
    # As `make dev` starts it: with segpipe's Dagster settings for the processes that create runs.
    env = {
        **DAGSTER_SETTINGS,
        **os.environ,
        "DAGSTER_HOME": str(home),
        DATA_DIR_ENV: str(data.root),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(DAGSTER), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so teardown reaches every child
            preexec_fn=_default_signals,
        )
    dev = DagsterDev(process, f"http://127.0.0.1:{port}", data, log)
    dev.wait_for("the webserver", lambda: _answers(f"{dev.url}/server_info"), timeout=120)
    dev.wait_for("the code location", lambda: _location_loaded(dev), timeout=120)
    return dev


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _location_loaded(dev: DagsterDev) -> bool:
    data = dev.graphql(
        """{ workspaceOrError { ... on Workspace { locationEntries {
             name loadStatus locationOrLoadError { __typename } } } } }"""
    )
    entries = data["workspaceOrError"]["locationEntries"]
    assert all(e["locationOrLoadError"]["__typename"] != "PythonError" for e in entries), entries
    return any(e["name"] == "segpipe" and e["loadStatus"] == "LOADED" for e in entries)


def stop(dev: DagsterDev, grace: float = 30) -> list[int]:
    """SIGTERM the process group, SIGKILL what is left after `grace`; the pids still alive."""
    group = dev.process.pid
    _signal_group(group, signal.SIGTERM)
    try:
        dev.process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(group, signal.SIGKILL)
        dev.process.wait(timeout=10)
    # Dagster's code-server manager restarts a code server that exits while dagster dev shuts
    # down ("Code server process has exited with code 0. Restarting"): that one was born after
    # the signal above, so the group is told once more before anything counts as left behind.
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (left := _group_members(group)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        _signal_group(group, signal.SIGKILL)
    return left


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def _group_members(group: int) -> list[int]:
    """Live (not zombie) processes of the group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(stat.parent.name))
    return members
