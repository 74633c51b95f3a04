"""The session figures of bench_sessions.py (issue 12), each beside its
baseline in the same run. Every loop is bounded in count and in time; every
session opened here is closed, every container started here removed."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import statistics
import subprocess
import time
from collections.abc import Iterator

import docker

from bench import calls
from bench.stats import ratio, summary_ms
from sandbox.common.v1 import execution_pb2 as common
from sandbox.common.v1 import session_pb2 as cells
from sandbox.control.v1 import control_pb2 as pb

ONE_PLUS_ONE = "1+1"
# Asks for memory no warm container has (calls.COLD_MEMORY_BYTES): the cold path.
COLD_LIMITS = common.Limits(memory_bytes=calls.COLD_MEMORY_BYTES)
IDLE_SETTLE_SECONDS = 3.0
HOSTNAME_CELL = "import socket\nsocket.gethostname()"
IDLE_PYTHON = "import time\ntime.sleep(120)"


class Failed(Exception):
    """A call did not do what the figure needs; the figure is then n/a."""


@dataclasses.dataclass
class Cell:
    seconds: float
    result: cells.CellResult | None
    last_value: bytes


def create(stub, *, cold: bool = False, idle_timeout_seconds: int = 300) -> tuple[str, float]:
    started = time.perf_counter()
    session = stub.CreateSession(
        pb.CreateSessionRequest(
            session_id=f"bench-{secrets.token_hex(6)}",
            language=common.LANGUAGE_PYTHON,
            limits=COLD_LIMITS if cold else None,
            idle_timeout_seconds=idle_timeout_seconds,
        ),
        timeout=120,
    )
    return session.session_id, time.perf_counter() - started


@contextlib.contextmanager
def opened(stub, *, cold: bool = False) -> Iterator[str]:
    session_id, _ = create(stub, cold=cold)
    try:
        yield session_id
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id), timeout=60)


def run_cell(stub, session_id: str, code: str) -> Cell:
    started = time.perf_counter()
    result, value = None, b""
    for event in stub.RunCell(pb.RunCellRequest(session_id=session_id, code=code, timeout_ms=20_000), timeout=60):
        kind = event.WhichOneof("event")
        if kind == "value" and event.value.last_value and event.value.mime_type == "text/plain":
            value = event.value.data
        elif kind == "result":
            result = event.result
    return Cell(time.perf_counter() - started, result, value)


def _checked(cell: Cell, expected: bytes) -> Cell:
    if cell.result is None or cell.result.status != cells.CELL_STATUS_OK or cell.last_value != expected:
        status = "no result" if cell.result is None else cells.CellStatus.Name(cell.result.status)
        raise Failed(f"cell gave {status} with last value {cell.last_value!r}, not {expected!r}")
    return cell


def second_call(stub, *, rounds: int, warmup: int) -> dict:
    """`1+1` in an open session after its first call, back to back, then as
    many warm one-shot Executes of `print(1+1)` (what a client does without
    sessions), in the same run. Not interleaved: each Execute sets the warm
    pool refilling (a container made and started, ~0.2 s of CPU) while the
    next call would run, which no session user's call meets."""
    series: dict[str, list[float]] = {"session_call": [], "execute": []}
    with opened(stub) as session_id:
        _checked(run_cell(stub, session_id, ONE_PLUS_ONE), b"2")  # the first call
        for i in range(warmup + rounds):
            cell = _checked(run_cell(stub, session_id, ONE_PLUS_ONE), b"2")
            if i >= warmup:
                series["session_call"].append(cell.seconds)
    for i in range(warmup + rounds):
        once = calls.execute(stub, calls.request("print(1+1)"))
        if not once.ok or once.stdout_head != b"2\n":
            raise Failed(f"Execute of print(1+1): {once.describe()}")
        if i >= warmup:
            series["execute"].append(once.total)
    total = {k: summary_ms(v) for k, v in series.items()}
    return {
        "rounds": rounds,
        "total_ms": total,
        "ratio_p50": ratio(total["session_call"]["p50"], total["execute"]["p50"]),
    }


def create_latency(stub, *, rounds: int) -> dict:
    """CreateSession with a warm container, with limits no warm container
    fits, and `docker run --rm` of hello world, interleaved; each session
    closed at once."""
    series: dict[str, list[float]] = {"warm": [], "cold": [], "docker_run": []}
    for _ in range(rounds):
        for name, cold in (("warm", False), ("cold", True)):
            session_id, seconds = create(stub, cold=cold)
            stub.CloseSession(pb.CloseSessionRequest(session_id=session_id), timeout=60)
            series[name].append(seconds)
        base = calls.docker_run(calls.HELLO)
        if not base.ok:
            raise Failed(f"docker run: {base.describe()}")
        series["docker_run"].append(base.total)
    total = {k: summary_ms(v) for k, v in series.items()}
    return {
        "rounds": rounds,
        "total_ms": total,
        "ratio_p50": {k: ratio(total[k]["p50"], total["docker_run"]["p50"]) for k in ("warm", "cold")},
    }


def _memory(api: docker.APIClient, container: str) -> dict[str, float]:
    """The container's working set (usage less inactive file pages, as
    `docker stats` and the kubelet count it) and its RSS, in MiB."""
    stats = api.stats(container, stream=False)["memory_stats"]
    detail = stats.get("stats", {})
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    rss = detail.get("total_rss", detail.get("anon", 0))
    return {"working_set_mib": (stats["usage"] - inactive) / 2**20, "rss_mib": rss / 2**20}


def _plain_pythons(count: int) -> list[str]:
    ids = []
    for _ in range(count):
        argv = ["docker", "run", "-d", "--rm", "--network", "none", "--label", f"{calls.BENCH_LABEL}={calls.RUN_ID}"]
        out = subprocess.run([*argv, calls.IMAGE, "python3", "-c", IDLE_PYTHON], capture_output=True, check=True)
        ids.append(out.stdout.decode().strip())
    return ids


def idle_memory(stub, *, sessions: int) -> dict:
    """Memory of `sessions` idle Python sessions (their kernel started and
    one call made), read from the engine, against as many plain containers
    idling in `python3 -c 'time.sleep(...)'`."""
    api = docker.APIClient(version="auto")
    plain: list[str] = []
    with contextlib.ExitStack() as stack:
        containers = []
        for _ in range(sessions):
            session_id = stack.enter_context(opened(stub))
            cell = run_cell(stub, session_id, HOSTNAME_CELL)
            if cell.result is None or cell.result.status != cells.CELL_STATUS_OK:
                raise Failed("the hostname cell failed")
            containers.append(cell.last_value.decode().strip("'\""))
        try:
            plain = _plain_pythons(sessions)
            time.sleep(IDLE_SETTLE_SECONDS)
            held = [_memory(api, c) for c in containers]
            bare = [_memory(api, c) for c in plain]
        finally:
            for container in plain:
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_container(container, force=True, v=True)
            api.close()

    def median(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 1)

    figures: dict[str, float | None] = {
        "sessions": sessions,
        "session_working_set_mib": median(held, "working_set_mib"),
        "session_rss_mib": median(held, "rss_mib"),
        "plain_python_working_set_mib": median(bare, "working_set_mib"),
        "plain_python_rss_mib": median(bare, "rss_mib"),
    }
    figures["ratio_working_set"] = ratio(figures["session_working_set_mib"], figures["plain_python_working_set_mib"])
    return figures
