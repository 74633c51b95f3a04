"""A throw-away PostgreSQL server, for the test suite
(tests/integration/control/conftest.py) and the store benchmark
(bench/bench_mesh.py): the Debian server binaries run as the `postgres`
user from a temporary directory, listening on 127.0.0.1 on a free port with
the unix socket in that directory, trust authentication; stopped and
deleted at the end. The suite turns fsync off (speed); the benchmark keeps
it on, to see what a real deployment would."""

from __future__ import annotations

import contextlib
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

# Debian's layout (postgresql-<version> packages); PG_BIN overrides it.
_DEBIAN_PG = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/initdb"))
PG_BIN = pathlib.Path(os.environ.get("PG_BIN") or (_DEBIAN_PG[-1].parent if _DEBIAN_PG else "."))


class Unavailable(Exception):
    """PostgreSQL cannot be started here; the message says why."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(*args: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, text=True, timeout=60)


def start_server(data_dir: str) -> None:
    """Starts a server of temporary_server's again (after stop_server)."""
    log = pathlib.Path(data_dir).parent / "log"
    _as_postgres(str(PG_BIN / "pg_ctl"), "-D", data_dir, "-l", str(log), "-w", "-t", "30", "start")


def stop_server(data_dir: str) -> None:
    """Stops it as a crash would look to its clients: every connection cut at once."""
    _as_postgres(str(PG_BIN / "pg_ctl"), "-D", data_dir, "-m", "immediate", "-w", "stop")


@contextlib.contextmanager
def temporary_server(prefix: str, *, fsync: bool, max_connections: int) -> Iterator[str]:
    """Yields the server's SQLAlchemy base URL (no database name); raises
    Unavailable (before anything is left behind) when it cannot start."""
    if not (PG_BIN / "initdb").exists():
        raise Unavailable(f"no PostgreSQL server binaries in {PG_BIN} (set PG_BIN)")
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("no `postgres` user to run the server as") from None
    if shutil.which("runuser") is None:
        raise Unavailable("runuser is missing")
    base = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    data = base / "data"
    started = False
    try:
        os.chmod(base, 0o700)
        os.chown(base, user.pw_uid, user.pw_gid)
        port = _free_port()
        try:
            _as_postgres(
                str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
            )
            started = True
            # In its configuration, not on pg_ctl's command line: a test that
            # stops the server (database loss) starts it again as it was.
            with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write(
                    f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{base}'\n"
                    f"max_connections = {max_connections}\nfsync = {'on' if fsync else 'off'}\n"
                )
            start_server(str(data))
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise Unavailable(f"PostgreSQL did not start: {detail.strip()[:200]}") from None
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        if started:
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
