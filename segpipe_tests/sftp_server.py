"""A real OpenSSH server on loopback for delivery tests, and a TCP proxy that can break it.

`sftp_server(folder)` starts Debian's `/usr/sbin/sshd -D` with its own host key, config and
authorized_keys (`Subsystem sftp internal-sftp`) on a free 127.0.0.1 port, and stops it after.
`Proxy` forwards a loopback port to the server and, when told, refuses connections or cuts the
first ones after N bytes from the client: a server that drops the connection mid-file.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class SftpServer:
    folder: Path  # what the server writes into (the test reads it directly)
    port: int
    username: str
    client_key: Path
    host_public_key: str  # "ssh-ed25519 AAAA..."

    def known_hosts_line(self, port: int | None = None) -> str:
        return f"[127.0.0.1]:{port or self.port} {self.host_public_key}\n"


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _wait_for_banner(port: int, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {process.stderr.read().decode(errors='replace')}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as probe:
            if probe.recv(64).startswith(b"SSH-2.0"):
                return
        time.sleep(0.1)
    raise RuntimeError("sshd did not answer")


@contextmanager
def sftp_server(root: Path) -> Iterator[SftpServer]:
    """sshd serving SFTP on a free loopback port; the server's files under `root/served`."""
    assert SSHD.exists(), "install Debian's openssh-server (.ci/run does)"
    config_dir = root / "sshd"
    config_dir.mkdir(parents=True)
    _keygen(config_dir / "host_key")
    _keygen(config_dir / "client_key")
    shutil.copy(config_dir / "client_key.pub", config_dir / "authorized_keys")
    port = free_port()
    (config_dir / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {config_dir / "host_key"}
PidFile {config_dir / "sshd.pid"}
AuthorizedKeysFile {config_dir / "authorized_keys"}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
"""
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config_dir / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_banner(port, process)
        served = root / "served"
        served.mkdir()
        yield SftpServer(
            folder=served,
            port=port,
            username=getpass.getuser(),
            client_key=config_dir / "client_key",
            host_public_key=" ".join((config_dir / "host_key.pub").read_text().split()[:2]),
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Proxy:
    """127.0.0.1:`port` forwarded to `upstream`. `refuse`: close every connection at once.
    `cut_after`: the first `cuts` connections are closed once the client has sent that many
    bytes; `on_cut` runs at that moment (to look at the server's folder mid-file)."""

    upstream: int
    refuse: bool = False
    cut_after: int | None = None
    cuts: int = 1
    on_cut: Callable[[], None] | None = None
    connections: int = 0
    cut: int = 0
    port: int = 0
    _listener: socket.socket | None = field(default=None, repr=False)

    def start(self) -> Proxy:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        with suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.refuse:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            limit = self.cut_after if self.cut < self.cuts else None
            if limit is not None:
                self.cut += 1
            threading.Thread(target=self._pump, args=(client, server, limit), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while chunk := source.recv(4096):
                if limit is not None and sent + len(chunk) > limit:
                    target.sendall(chunk[: limit - sent])
                    time.sleep(0.3)  # let the server write what it got before looking
                    if self.on_cut:
                        self.on_cut()
                    break
                target.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        for end in (source, target):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                end.close()
