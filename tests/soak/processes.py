"""The soak's mesh: control and two spawners as processes, the way operators
run them (`python -m services.control`, `python -m services.spawner`), so a
spawner can be killed for real and each service's resident memory read
from /proc. Everything lives under one temporary directory and carries names
of its own; `Mesh.close` stops what it started, by process id."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time

from tests.socket_proxy import SocketProxy, engine_socket_path

ROOT = pathlib.Path(__file__).resolve().parents[2]
KIB = 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One service process; `start` again after `kill` restarts it as it was."""

    def __init__(self, name: str, module: str, port: int, env: dict[str, str], log: pathlib.Path):
        self.name, self.module, self.port, self.env, self.log = name, module, port, env, log
        self.process: subprocess.Popen | None = None

    def start(self, wait_seconds: float = 60) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'stubs'}", **self.env},
                stdout=log,
                stderr=log,
            )
        subprocess.run(
            [sys.executable, "scripts/wait_healthy.py", f"127.0.0.1:{self.port}", str(wait_seconds)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )

    def kill(self) -> None:
        """SIGKILL: what a crash or the OOM killer does."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, seconds: float = 60) -> None:
        """SIGTERM (its drain), then SIGKILL if it outlives `seconds`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss_mib(self) -> float:
        """Resident memory (VmRSS) of the process, MiB; 0 when it is not running."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        try:
            for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * KIB / (1024 * 1024)
        except OSError:
            pass
        return 0.0


class Mesh:
    def __init__(self, base: pathlib.Path, tenants: dict[str, dict[str, float]], *, capacity: int, max_in_flight: int):
        self.base = base
        self.run = secrets.token_hex(3)
        self.secret = secrets.token_hex(32)
        self.keys = {tenant: secrets.token_hex(16) for tenant in tenants}
        self.max_in_flight = max_in_flight
        self.spawners: list[Service] = []
        self.workspace_roots: list[pathlib.Path] = []
        # The spawners reach the engine through this: stopping it is an
        # engine restart as they see it, the machine's engine untouched.
        self.engine = SocketProxy(base / "engine.sock", engine_socket_path())
        for letter in "ab":
            name = f"soak-{self.run}-{letter}"
            root = base / f"workspaces-{letter}"
            root.mkdir()
            port = free_port()
            env = {
                "SPAWNER_LISTEN": f"127.0.0.1:{port}",
                "SPAWNER_METRICS_LISTEN": "",
                "SPAWNER_DOCKER_HOST": f"unix://{self.engine.path}",
                "SPAWNER_NAME": name,
                "SPAWNER_WORKSPACE_ROOT": str(root),
                "SPAWNER_SECRET": self.secret,
                "SPAWNER_CAPACITY": str(capacity),
                "SPAWNER_DRAIN_SECONDS": "5",
            }
            self.spawners.append(Service(name, "services.spawner", port, env, base / f"spawner-{letter}.log"))
            self.workspace_roots.append(root)
        self.data_dir = base / "control"
        self.database = self.data_dir / "control.db"
        port = free_port()
        self.control = Service(
            "control",
            "services.control",
            port,
            {
                "CONTROL_LISTEN": f"127.0.0.1:{port}",
                "CONTROL_METRICS_LISTEN": "",
                # A stable name: the restarted control settles what the
                # killed one relayed at once (docs/operations.md).
                "CONTROL_REPLICA_ID": f"soak-{self.run}",
                "CONTROL_DATA_DIR": str(self.data_dir),
                "CONTROL_DATABASE_URL": f"sqlite:///{self.database}",
                "CONTROL_SPAWNERS": ",".join(f"127.0.0.1:{s.port}" for s in self.spawners),
                "CONTROL_SPAWNER_SECRET": self.secret,
                "CONTROL_TENANT_KEYS": json.dumps(self.keys),
                "CONTROL_TENANT_QUOTAS": json.dumps({t: q for t, q in tenants.items() if q}),
                "CONTROL_MAX_IN_FLIGHT": str(max_in_flight),
                "CONTROL_DRAIN_SECONDS": "10",
                "CONTROL_QUEUE_TIMEOUT_SECONDS": "10",
            },
            base / "control.log",
        )

    @property
    def services(self) -> list[Service]:
        return [self.control, *self.spawners]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.control.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"

    def start(self) -> None:
        self.engine.start()
        for spawner in self.spawners:
            spawner.start()
        self.control.start()

    def close(self) -> None:
        """Control first (its drain settles what is in flight), then the spawners."""
        if not self.engine.path.exists():
            self.engine.start()  # the spawners remove their sandboxes through it
        self.control.stop()
        for spawner in self.spawners:
            spawner.stop()
        self.engine.stop()
        time.sleep(0.1)
