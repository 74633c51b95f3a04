"""Checks of the running mesh: control, the spawner, the egress, the
sandbox networks, and whether each service reaches the next one with the
secret it signs with."""

from __future__ import annotations

import os
from collections.abc import Mapping

import docker
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandbox.egress.v1 import egress_pb2, egress_pb2_grpc
from sandbox_mesh import config
from sandbox_mesh.client import Client
from sandbox_mesh.doctor.report import FAIL, PASS, WARN, Check
from sandbox_mesh.errors import MeshError
from services.common.auth import ClientAuthInterceptor

DEFAULT_SPAWNER = "127.0.0.1:50051"
DEFAULT_PROJECT = "sandbox-mesh"
CALL_TIMEOUT_SECONDS = 3.0
ROLE_LABEL = "sandbox-mesh.role"
SANDBOX_NETWORK_ROLE = "sandbox-network"
# An id the egress accepts and no execution has: its decisions are empty.
PROBE_EXECUTION_ID = "doctor-probe"
PROBE_PYTHON = "/opt/venv/bin/python"
# Run inside a service's container with its own settings (the doctor never
# sees the secret): one signed call to the next service, the outcome on stdout
# as "OK" or the gRPC status name and its message.
PROBE = """
import os, sys, grpc
from services.common.auth import ClientAuthInterceptor
kind, address_var, secret_var = sys.argv[1:4]
address = os.environ.get(address_var, "").split(",")[0].strip()
secret = os.environ.get(secret_var, "").encode()
channel = grpc.intercept_channel(grpc.insecure_channel(address), ClientAuthInterceptor(secret))
try:
    if kind == "spawner":
        from sandbox.spawner.v1 import spawner_pb2, spawner_pb2_grpc
        spawner_pb2_grpc.SpawnerStub(channel).Info(spawner_pb2.InfoRequest(), timeout=3)
    else:
        from sandbox.egress.v1 import egress_pb2, egress_pb2_grpc
        request = egress_pb2.GetDecisionsRequest(execution_id="doctor-probe")
        egress_pb2_grpc.EgressStub(channel).GetDecisions(request, timeout=3)
except grpc.RpcError as error:
    print(error.code().name, address, error.details())
else:
    print("OK", address)
"""


# ---- control and the spawner, from here -------------------------------------------


def key_source(key: str | None, environ: Mapping[str, str], env_file) -> str:
    if key is not None:
        return "--key"
    for name in ("SANDBOX_KEY", "SANDBOX_TENANT_KEY", "CONTROL_TENANT_KEYS"):
        if environ.get(name):
            return name
    return f"CONTROL_TENANT_KEYS in {env_file}" if env_file else "CONTROL_TENANT_KEYS"


def control_check(
    url: str | None, tenant: str | None, key: str | None, *, env_file, environ: Mapping[str, str] | None = None
) -> Check:
    """An authenticated GetQuota with the client's own connection settings."""
    env = os.environ if environ is None else environ
    try:
        connection = config.resolve(url, tenant, key, environ=env, env_file=env_file)
    except config.ConfigError as exc:
        return Check("control", FAIL, str(exc), "set SANDBOX_KEY or pass --key")
    source = key_source(key, env, env_file)
    try:
        with Client(connection.url, connection.tenant, connection.key, call_timeout=CALL_TIMEOUT_SECONDS) as client:
            client.quota()
    except MeshError as exc:
        if exc.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            return Check("control", FAIL, f"{connection.url}: {exc}", "make up (or point --url/SANDBOX_URL at it)")
        if exc.code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return Check(
                "control",
                FAIL,
                f"{connection.url} refused tenant {connection.tenant!r}: {exc}",
                f"check the key for {connection.tenant!r} (from {source})",
            )
        return Check("control", FAIL, f"{connection.url}: {exc}", "see control's logs: make logs")
    return Check("control", PASS, f"{connection.url} accepts tenant {connection.tenant!r} (key from {source})")


def spawner_check(address: str) -> Check:
    """The spawner's gRPC health; a warning only when nothing answers (it may
    live elsewhere than this machine)."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.RpcError as error:
            return Check("spawner", WARN, f"{address}: no health answer ({error.code().name})", "make up")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        return Check("spawner", FAIL, f"{address}: {status}", "see the spawner's logs: make logs")
    return Check("spawner", PASS, f"{address}: {status}")


# ---- the egress ------------------------------------------------------------------


def container_env(container) -> dict[str, str]:
    pairs = (item.partition("=") for item in container.attrs.get("Config", {}).get("Env") or [])
    return {name: value for name, _, value in pairs}


def egress_check(engine: docker.DockerClient, name: str) -> Check:
    """The egress container: running and healthy (compose's healthcheck: its
    gRPC socket is up), with its mode and allowlist as it was started."""
    try:
        container = engine.containers.get(name)
    except docker.errors.NotFound:
        return Check("egress", WARN, f"no container {name!r} (fine if the egress runs elsewhere)", "make up")
    state = container.attrs.get("State", {})
    health = (state.get("Health") or {}).get("Status", "")
    env = container_env(container)
    mode = env.get("EGRESS_MODE") or "passthrough"
    hosts = [host for host in (env.get("EGRESS_ALLOW_HOSTS") or "").split(",") if host.strip()]
    shown = ", ".join(hosts[:4]) + (f" and {len(hosts) - 4} more" if len(hosts) > 4 else "")
    detail = f"{name}: {state.get('Status', '?')}{f' ({health})' if health else ''}, {mode} mode"
    if state.get("Status") != "running" or health == "unhealthy":
        return Check("egress", FAIL, detail, f"see its log: docker logs {name}; then make up")
    if health == "starting":
        return Check("egress", WARN, detail, "wait a few seconds and run doctor again")
    if "EGRESS_ALLOW_HOSTS" in env and not hosts:
        return Check("egress", WARN, f"{detail}, empty allowlist: no package installs", "make up derives it")
    return Check("egress", PASS, f"{detail}, allows {shown or 'what the runtime image uses'}")


def egress_grpc_check(address: str, secret: str) -> Check:
    """A signed GetDecisions at the egress's gRPC address, from here (when
    it listens where this machine reaches: TCP, or a socket we may open)."""
    channel = grpc.intercept_channel(grpc.insecure_channel(address), ClientAuthInterceptor(secret.encode()))
    try:
        egress_pb2_grpc.EgressStub(channel).GetDecisions(
            egress_pb2.GetDecisionsRequest(execution_id=PROBE_EXECUTION_ID), timeout=CALL_TIMEOUT_SECONDS
        )
    except grpc.RpcError as error:
        code = error.code().name
        if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            fix = "EGRESS_SECRET must be the egress's (see .env), then make up"
        else:
            fix = "make up (or point at the egress's EGRESS_GRPC_LISTEN)"
        return Check("egress rpc", FAIL, f"{address}: {code} {error.details() or ''}".strip(), fix)
    finally:
        channel.close()
    return Check("egress rpc", PASS, f"{address} accepts our signature")


# ---- the sandbox networks --------------------------------------------------------


def networks_check(engine: docker.DockerClient) -> Check:
    """Every network labelled as a sandbox network must be internal (no
    route off its subnet) with IPv6 off, as the spawner makes them."""
    networks = engine.networks.list(filters={"label": f"{ROLE_LABEL}={SANDBOX_NETWORK_ROLE}"})
    bad = []
    for network in networks:
        # A listed network's attributes may lack details an inspect has.
        attrs = engine.api.inspect_network(network.name or "")
        problems = [
            problem
            for problem, wrong in (("not internal", not attrs.get("Internal")), ("IPv6 on", attrs.get("EnableIPv6")))
            if wrong
        ]
        if problems:
            bad.append(f"{network.name} ({', '.join(problems)})")
    if bad:
        return Check(
            "networks",
            FAIL,
            f"sandbox networks that leak: {'; '.join(bad)}",
            "remove them (docker network rm NAME) and restart the spawner: it makes them internal, IPv6 off",
        )
    if not networks:
        return Check("networks", PASS, "no sandbox networks yet (the spawner makes them at start)")
    return Check("networks", PASS, f"{len(networks)} sandbox networks, all internal with IPv6 off")


# ---- service to service ----------------------------------------------------------


def link_check(
    engine: docker.DockerClient,
    name: str,
    container_name: str,
    kind: str,
    address_var: str,
    secret_var: str,
    environment: Mapping[str, str] | None = None,
) -> Check:
    """From inside ``container_name``, one call to the next service (``kind``:
    spawner or egress) at the address and with the secret of its own
    environment variables: reachable and authenticated as the service sees it."""
    try:
        container = engine.containers.get(container_name)
    except docker.errors.NotFound:
        return Check(name, WARN, f"no container {container_name!r} to look from", "make up")
    if container.status != "running":
        return Check(name, FAIL, f"{container_name} is {container.status}", "make up")
    try:
        result = container.exec_run(
            [PROBE_PYTHON, "-c", PROBE, kind, address_var, secret_var], environment=dict(environment or {})
        )
    except docker.errors.APIError as exc:
        return Check(name, WARN, f"cannot run a probe in {container_name}: {exc}", "make up")
    raw = result.output if isinstance(result.output, bytes) else b""
    output = raw.decode(errors="replace").strip().splitlines()
    answer = output[-1] if output else ""
    if result.exit_code == 0 and answer.startswith("OK "):
        return Check(name, PASS, f"{container_name} reaches {answer[3:]} and is accepted")
    code = answer.split(" ", 1)[0]
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        fix = "the two services hold different secrets: restart both with the same .env (make down && make up)"
    elif code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        fix = f"check {address_var} of {container_name} and that the {kind} is up (make ps, make logs)"
    else:
        fix = f"see {container_name}'s log: make logs"
    return Check(name, FAIL, f"from {container_name}: {answer or f'probe exited {result.exit_code}'}", fix)


def data_dir(engine: docker.DockerClient, project: str) -> str | None:
    """Where control's data volume lives on this machine."""
    try:
        return str(engine.volumes.get(f"{project}_control-data").attrs["Mountpoint"])
    except (docker.errors.NotFound, KeyError):
        return None


def service_container(engine: docker.DockerClient, project: str, service: str) -> str:
    """The compose container of ``service`` (v1 names it project_service_1,
    v2 project-service-1: its labels say it either way)."""
    labels = [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]
    found = engine.containers.list(all=True, filters={"label": labels})
    return (found[0].name or "") if found else f"{project}-{service}-1"
