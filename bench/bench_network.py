"""What a network of its own costs an execution: one shared network (the
former design, the baseline) versus the spawner's pool versus a network made
and removed per execution.

Each round runs the same `network: true` hello world through one in-process
spawner three times, once per design, interleaved (shared, pool,
per-execution, shared, ...) so that whatever else the machine does lands on
all three alike; the figures are the client's wall time up to the `result`
event, which the spawner sends only after the sandbox is removed and its
network handed back. The spawner's egress is a stand-in container (the pool
only connects it; nothing here goes through a proxy), so what differs
between the series is the network work alone: for the pool, one check with
the engine per loan; per execution, creating the network, connecting the
egress, and afterwards disconnecting and removing it. A package install
adds the same install time in every design: the same egress, the same proxy,
a bridge between the sandbox and the egress either way.

    .venv/bin/python bench/bench_network.py [--iterations N] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "stubs")]  # also works without `pip install -e`

import docker  # noqa: E402
import grpc  # noqa: E402
from bench_execute import IMAGE, summary, time_execute  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from sandbox.spawner.v1 import spawner_pb2_grpc  # noqa: E402
from services.common.auth import ClientAuthInterceptor  # noqa: E402
from services.spawner import sandbox  # noqa: E402
from services.spawner.config import SpawnerSettings  # noqa: E402
from services.spawner.netpool import BRIDGE_OPTIONS, Lease, NetworkPool, remove_network  # noqa: E402
from services.spawner.server import start  # noqa: E402

WARMUP = 3
MAX_ITERATIONS = 500
DESIGNS = ("shared", "pool", "per-execution")
BASELINE = "shared"


def make_network(pool: NetworkPool) -> Lease:
    """A network as the pool makes them (same options, same labels, so a
    leftover is reaped like the pool's), with the egress connected."""
    api, egress_id = pool.api, pool.api.inspect_container(pool.egress_container)["Id"]
    name = f"sandbox-mesh-{pool.spawner_name}-bench-{secrets.token_hex(4)}"
    api.create_network(
        name,
        driver="bridge",
        internal=True,
        enable_ipv6=False,
        options=BRIDGE_OPTIONS,
        labels=pool.labels,
        check_duplicate=True,
    )
    api.connect_container_to_network(egress_id, name)
    members = api.inspect_network(name)["Containers"]
    return Lease(name, members[egress_id]["IPv4Address"].partition("/")[0])


class SharedNetwork:
    """The former design: every execution on one network."""

    def __init__(self, pool: NetworkPool):
        self.api = pool.api
        self.shared = make_network(pool)

    def lease(self) -> Lease:
        return self.shared

    def release(self, lease: Lease) -> None:
        pass

    def close(self) -> None:
        remove_network(self.api, self.shared.network)


class NetworkPerExecution:
    """A network made for each execution and removed after it."""

    def __init__(self, pool: NetworkPool):
        self.pool = pool

    def lease(self) -> Lease:
        return make_network(self.pool)

    def release(self, lease: Lease) -> None:
        remove_network(self.pool.api, lease.network)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="counted rounds (max 500)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if not 1 <= args.iterations <= MAX_ITERATIONS:
        parser.error(f"--iterations must be between 1 and {MAX_ITERATIONS}")

    client = docker.from_env(version="auto")
    engine = client.version()
    name = f"bench-{secrets.token_hex(4)}"
    labels = {sandbox.LABEL_ROLE: "bench", sandbox.LABEL_SPAWNER: name}
    egress = client.containers.run(IMAGE, ["sleep", "3600"], detach=True, labels=labels, user="10001", cap_drop=["ALL"])
    secret = secrets.token_hex(32)
    root = tempfile.mkdtemp(prefix="bench-workspaces-")
    samples: dict[str, list[float]] = {design: [] for design in DESIGNS}
    running, shared = None, None
    try:
        running = start(
            SpawnerSettings(
                listen="127.0.0.1:0",
                metrics_listen="",
                name=name,
                workspace_root=root,
                capacity=4,
                secret=SecretStr(secret),
                egress_container=egress.id,
            )
        )
        access = running.spawner.network
        assert access is not None  # an egress container was given
        shared = SharedNetwork(access.pool)
        designs = {
            # The stand-ins lend and take back like the pool, nothing more.
            "shared": dataclasses.replace(access, pool=shared),  # type: ignore[arg-type]
            "pool": access,
            "per-execution": dataclasses.replace(access, pool=NetworkPerExecution(access.pool)),  # type: ignore[arg-type]
        }
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            signed = grpc.intercept_channel(channel, ClientAuthInterceptor(secret.encode()))
            stub = spawner_pb2_grpc.SpawnerStub(signed)
            for i in range(WARMUP + args.iterations):
                for design in DESIGNS:
                    running.spawner.network = designs[design]
                    elapsed, _ = time_execute(stub, "python", network=True)
                    if i >= WARMUP:
                        samples[design].append(elapsed)
            running.spawner.network = access
    finally:
        if shared is not None:
            shared.close()
        if running is not None:
            running.stop(grace_seconds=5)
        egress.remove(force=True)
        shutil.rmtree(root, ignore_errors=True)
        client.close()

    rows = {design: summary(samples[design]) for design in DESIGNS}
    base = rows[BASELINE]
    report = {
        "iterations": args.iterations,
        "warmup": WARMUP,
        "engine": engine.get("Version"),
        "cpus": os.cpu_count(),
        "execute_ms": rows,
        "ratio_p50": {d: round(rows[d]["p50"] / base["p50"], 2) for d in DESIGNS},
        "ratio_p95": {d: round(rows[d]["p95"] / base["p95"], 2) for d in DESIGNS},
        "extra_p50_ms": {d: round(rows[d]["p50"] - base["p50"], 1) for d in DESIGNS},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"python hello world with network: true, {args.iterations} interleaved rounds (+{WARMUP} warm-up); "
        f"Docker {report['engine']}, {report['cpus']} CPUs; ratios against '{BASELINE}'"
    )
    print(
        f"{'':<15}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}{'min ms':>9}{'max ms':>9}{'ratio p50':>11}{'ratio p95':>11}"
    )
    for design in DESIGNS:
        row = rows[design]
        print(
            f"{design:<15}"
            + "".join(f"{row[k]:>9.1f}" for k in ("p50", "p95", "mean", "min", "max"))
            + f"{report['ratio_p50'][design]:>11.2f}{report['ratio_p95'][design]:>11.2f}"
        )
    print(
        f"p50 extra over '{BASELINE}': "
        + ", ".join(f"{d} {report['extra_p50_ms'][d]:+.1f} ms" for d in DESIGNS if d != BASELINE)
    )


if __name__ == "__main__":
    main()
