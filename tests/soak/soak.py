"""Load with faults: N client threads of several tenants call control for T
seconds while control is killed (SIGKILL), the Docker engine goes away as
the spawners see it (they reach it through a socket proxy of the soak's own,
stopped for a few seconds and started again: the machine's engine is shared
and is left alone), and a spawner is killed; each comes back.

Afterwards it checks what an operator would page on: every execution
recorded is terminal, no call hung, each tenant's quota counters equal the
sum of what its records used (tests/quota_ledger.py), no tenant ever had
more executions in flight than its limit (sampled as admission counts them),
and, once the mesh stopped, no container, workspace, cgroup parent or
unreferenced blob is left. It prints the counts and each service's resident
memory at start and end (and control's along the way).

    python -m tests.soak.soak --clients 12 --seconds 300

tests/soak/test_soak.py runs it small in the suite."""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import pathlib
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import tracemalloc

import docker
import grpc

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from services.control.auth import TenantClientInterceptor
from services.control.executions.states import NONTERMINAL, TERMINAL
from services.spawner import sandbox
from services.spawner.cgroups import CgroupLayout
from tests import quota_ledger
from tests.soak.processes import Mesh

CALL_DEADLINE_SECONDS = 90  # a call longer than this is a hang
ENGINE_DOWN_SECONDS = 3.0
# The in-flight limit is checked on what admission itself counts: the
# tenant's live records, in one snapshot of the database, 20 times a second.
# (The records' own times cannot tell: an admission reads its clock before
# its transaction waits for the write lock, so its created_at may precede
# the verdict that made room for it.)
SAMPLE_EVERY_SECONDS = 0.05
# One tenant with a small CPU budget, so budget refusals happen too.
TENANTS = {"soak-a": {}, "soak-b": {}, "soak-c": {"daily_cpu_seconds": 8.0}}
PROGRAMS = {
    "quick": "print('hello')",
    "sleep": "import time, random\ntime.sleep(random.uniform(0.2, 1.5))\nprint('slept')",
    "fail": "raise SystemExit(3)",
    "output": "open('/workspace/output/r.txt', 'w').write('r' * 2000)\nprint('wrote')",
    "noisy": "print('x' * 60000)",
}


@dataclasses.dataclass
class Tally:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    outcomes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: list[str] = dataclasses.field(default_factory=list)

    def count(self, what: str) -> None:
        with self.lock:
            self.outcomes[what] += 1

    def problem(self, what: str) -> None:
        with self.lock:
            self.problems.append(what)


def client(mesh: Mesh, tenant: str, stop: threading.Event, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    with grpc.insecure_channel(mesh.address) as channel:
        stub = control_pb2_grpc.ControlStub(
            grpc.intercept_channel(channel, TenantClientInterceptor(tenant, mesh.keys[tenant].encode()))
        )
        while not stop.is_set():
            kind = rng.choice(list(PROGRAMS))
            request = pb.ExecuteRequest(
                language=common.LANGUAGE_PYTHON,
                files=[common.File(path="main.py", content=PROGRAMS[kind].encode())],
                entry="main.py",
                limits=common.Limits(timeout_ms=5000),
            )
            started = time.monotonic()
            try:
                last = None
                for event in stub.Execute(request, timeout=CALL_DEADLINE_SECONDS):
                    last = event
                if last is None or last.WhichOneof("event") != "finished":
                    tally.problem(f"{tenant}: a stream ended without its record")
                    continue
                record = last.finished
                status = common.ExecutionStatus.Name(record.status).removeprefix("EXECUTION_STATUS_")
                code = common.ErrorCode.Name(record.error_code).removeprefix("ERROR_CODE_")
                tally.count(f"accepted {status} {code}".removesuffix(" UNSPECIFIED"))
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    tally.problem(f"{tenant}: a call hung for {time.monotonic() - started:.0f} s")
                tally.count(f"refused {exc.code().name}")
                time.sleep(rng.uniform(0.05, 0.3))  # a client backs off a little


def kill_control(mesh: Mesh, at: float, stop: threading.Event, tally: Tally) -> None:
    if stop.wait(at):
        return
    mesh.control.kill()
    tally.count("fault: killed control")
    time.sleep(1)
    mesh.control.start()  # settles what the killed process relayed
    tally.count("fault: restarted control")


def restart_the_engine(mesh: Mesh, at: float, stop: threading.Event, tally: Tally) -> None:
    if stop.wait(at):
        return
    mesh.engine.stop()
    tally.count("fault: the engine went away")
    time.sleep(ENGINE_DOWN_SECONDS)
    mesh.engine.start()
    tally.count("fault: the engine came back")


def kill_a_spawner(mesh: Mesh, at: float, stop: threading.Event, tally: Tally, rng: random.Random) -> None:
    if stop.wait(at):
        return
    victim = rng.choice(mesh.spawners)
    victim.kill()
    tally.count(f"fault: killed {victim.name}")
    time.sleep(2)
    victim.start()  # its start-up reap removes what the killed process left
    tally.count(f"fault: restarted {victim.name}")


def sample_memory(mesh: Mesh, stop: threading.Event, series: list, every: float) -> None:
    started = time.monotonic()
    while not stop.wait(every):
        series.append((time.monotonic() - started, [s.rss_mib() for s in mesh.services]))


def sample_in_flight(mesh: Mesh, stop: threading.Event, peaks: collections.Counter) -> None:
    """Each tenant's live records, read in one snapshot of the database (what
    admission counts), many times a second; the highest seen."""
    live = ", ".join(f"'{state}'" for state in sorted(NONTERMINAL))
    query = f"SELECT tenant, count(*) FROM executions WHERE status IN ({live}) GROUP BY tenant"
    with contextlib.closing(sqlite3.connect(mesh.database, timeout=30)) as db:
        while not stop.wait(SAMPLE_EVERY_SECONDS):
            for tenant, count in db.execute(query):
                peaks[tenant] = max(peaks[tenant], count)


def wait_terminal(database: pathlib.Path, seconds: float) -> list[tuple[str, str]]:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.closing(sqlite3.connect(database)) as db:
            live = [r for r in db.execute("SELECT execution_id, status FROM executions") if r[1] not in TERMINAL]
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.5)


def leftovers(mesh: Mesh) -> list[str]:
    found = []
    api = docker.APIClient(version="auto")
    try:
        for spawner in mesh.spawners:
            labels = [f"{sandbox.LABEL_SPAWNER}={spawner.name}"]
            for kind in ("containers", "networks"):
                items = getattr(api, kind)(filters={"label": labels}, **({"all": True} if kind == "containers" else {}))
                found += [f"{kind[:-1]} {item.get('Id', '')[:12]} of {spawner.name}" for item in items]
    finally:
        api.close()
    for root in mesh.workspace_roots:
        found += [f"workspace {p.name}" for p in root.iterdir()]
    layout = CgroupLayout.detect("/sys/fs/cgroup", "cgroupfs")
    for spawner in mesh.spawners:
        for base in layout.spawner_directories(spawner.name):
            if base.is_dir():
                found += [f"cgroup parent {p}" for p in base.iterdir() if p.is_dir()]
    with contextlib.closing(sqlite3.connect(mesh.database)) as db:
        referenced = {row[0] for row in db.execute("SELECT sha256 FROM output_files")}
    blobs = {p.name for p in (mesh.data_dir / "blobs").glob("*/*") if p.is_file()}
    found += [f"blob {digest[:12]} no record uses" for digest in sorted(blobs - referenced)]
    return found


def snapshot_control(mesh: Mesh, trace_dir: pathlib.Path, at: float, stop: threading.Event) -> None:
    """Asks the traced control for a tracemalloc snapshot `at` seconds in."""
    if not stop.wait(at):
        mesh.control.signal(signal.SIGUSR1)


def compare_snapshots(trace_dir: pathlib.Path, top: int = 15) -> None:
    taken = sorted(trace_dir.glob("*.snapshot"), key=lambda p: int(p.stem))
    if len(taken) < 2:
        print(f"tracemalloc: {len(taken)} snapshots, nothing to compare")
        return
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    ]
    first, last = (tracemalloc.Snapshot.load(str(p)).filter_traces(ignore) for p in (taken[0], taken[-1]))
    stats = last.compare_to(first, "traceback")
    grown = sum(stat.size_diff for stat in stats)
    print(f"tracemalloc, control's Python objects from the first snapshot to the last: {grown / 1024:+.0f} KiB")
    for stat in stats[:top]:
        # Where it was allocated, and the innermost frame of the project's own code on the way.
        site = stat.traceback[-1]
        ours = [f for f in stat.traceback if "/services/" in f.filename or "/tests/" in f.filename]
        via = f" via {ours[-1].filename}:{ours[-1].lineno}" if ours and ours[-1] is not site else ""
        print(f"  {stat.size_diff / 1024:+8.1f} KiB {stat.count_diff:+6d} objects  {site.filename}:{site.lineno}{via}")


def soak(
    clients: int,
    seconds: float,
    *,
    kill: bool = True,
    seed: int = 0,
    memory_every: float = 10.0,
    trace_control: bool = False,
) -> list[str]:
    """Runs the soak; the problems found (empty: all held)."""
    rng = random.Random(seed)
    base = pathlib.Path(tempfile.mkdtemp(prefix="soak-"))
    base.chmod(0o755)
    mesh = Mesh(base, TENANTS, capacity=3, max_in_flight=2)
    trace_dir = base / "tracemalloc"
    if trace_control:
        trace_dir.mkdir()
        mesh.control.module = "tests.soak.traced_control"
        mesh.control.env["SOAK_TRACE_DIR"] = str(trace_dir)
    tally, stop, series, sampled = Tally(), threading.Event(), [], collections.Counter()
    problems: list[str] = []
    try:
        mesh.start()
        rss_start = [s.rss_mib() for s in mesh.services]
        threads = [
            threading.Thread(target=client, args=(mesh, list(TENANTS)[i % len(TENANTS)], stop, tally, seed + i))
            for i in range(clients)
        ]
        threads.append(threading.Thread(target=sample_memory, args=(mesh, stop, series, memory_every)))
        threads.append(threading.Thread(target=sample_in_flight, args=(mesh, stop, sampled)))
        if trace_control:  # after the warm-up, and at the end
            for at in (min(60.0, seconds / 4), seconds - 1):
                threads.append(threading.Thread(target=snapshot_control, args=(mesh, trace_dir, at, stop)))
        if kill:
            at = seconds * rng.uniform(0.2, 0.3)
            threads.append(threading.Thread(target=kill_control, args=(mesh, at, stop, tally)))
            at = seconds * rng.uniform(0.4, 0.45)
            threads.append(threading.Thread(target=restart_the_engine, args=(mesh, at, stop, tally)))
            at = seconds * rng.uniform(0.6, 0.7)
            threads.append(threading.Thread(target=kill_a_spawner, args=(mesh, at, stop, tally, rng)))
        began = time.monotonic()
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join(CALL_DEADLINE_SECONDS + 30)
        elapsed = time.monotonic() - began
        live = wait_terminal(mesh.database, 60)
        problems += [f"execution {e} still {s} after the run" for e, s in live]
        problems += tally.problems
        problems += quota_ledger.mismatches(mesh.database_url)
        limits = {t: int(q.get("max_in_flight", mesh.max_in_flight)) for t, q in TENANTS.items()}
        problems += [
            f"{tenant} had {most} executions in flight, over its limit of {limits[tenant]}"
            for tenant, most in sampled.items()
            if most > limits[tenant]
        ]
        rss_end = [s.rss_mib() for s in mesh.services]
    finally:
        stop.set()
        mesh.close()
    problems += leftovers(mesh)
    report(mesh, tally, elapsed, rss_start, rss_end, series, sampled)
    if trace_control:
        compare_snapshots(trace_dir)
    if not problems:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"logs and database kept in {base}")
    return problems


def report(mesh, tally, elapsed, rss_start, rss_end, series, most) -> None:
    accepted = sum(n for what, n in tally.outcomes.items() if what.startswith("accepted"))
    print(f"soak: {elapsed:.0f} s, {accepted} executions accepted ({accepted / max(elapsed, 1):.1f}/s)")
    for what, n in sorted(tally.outcomes.items()):
        print(f"  {n:6d}  {what}")
    print("  most in flight per tenant (sampled): " + ", ".join(f"{t} {n}" for t, n in sorted(most.items())))
    print("resident memory, MiB (start -> end):")
    for service, start, end in zip(mesh.services, rss_start, rss_end, strict=True):
        print(f"  {service.name:22s} {start:7.1f} -> {end:7.1f}")
    if series:
        step = max(1, len(series) // 12)
        print("control over time: " + ", ".join(f"{t:.0f}s {rss[0]:.1f}" for t, rss in series[::step]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--no-kill", action="store_true", help="no faults: nothing is killed or cut off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-every", type=float, default=10.0, help="seconds between memory samples")
    parser.add_argument("--trace-control", action="store_true", help="tracemalloc in control; compare snapshots")
    args = parser.parse_args()
    problems = soak(
        args.clients,
        args.seconds,
        kill=not args.no_kill,
        seed=args.seed,
        memory_every=args.memory_every,
        trace_control=args.trace_control,
    )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("soak: all checks held" if not problems else f"soak: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
