"""The egress on a real Docker engine, against upstream servers of the suite's own.

    sandbox ──(internal net "inner")── egress ──(internal net "outer")── upstream

The egress's gRPC service is a unix socket in a directory of the suite's
own, bind-mounted into the egress (as compose shares it through a volume):
no network reaches it. Credentials are good only once admitted there with the
sandbox's address (``Mesh.auth`` admits at every egress started).

Both networks are `internal: true` with IPv6 off, so nothing the suite starts
can reach anything beyond them. A spawner under test is given an egress's
container and connects it to the network of each of its sandboxes. The egress runs from the services image with
this working tree mounted; its resolver answers only from a test hosts file,
which maps the suite's names to the upstream (on "outer") and to loopback,
link-local and private addresses that must be refused before any connection.
Everything carries `sandbox-mesh.role=test` plus a per-run label, and is
removed by id at the end.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import pathlib
import secrets
import socket
import time

import docker
import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandbox.egress.v1 import egress_pb2 as pb
from sandbox.egress.v1 import egress_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.common.contract import egress_token
from services.egress.allowlist import derive

ROOT = pathlib.Path(__file__).resolve().parents[3]
HERE = pathlib.Path(__file__).resolve().parent
RUNTIME_IMAGE = "sandbox-mesh/runtime:local"
SERVICES_IMAGE = "sandbox-mesh/services:local"
ROLE = "sandbox-mesh.role"
TEST_LABEL = "sandbox-mesh.egress-test"

UPSTREAM_NAMES = ["pkgs.test.internal", "other.test.internal"]
REFUSED_NAMES = {
    "loop.test.internal": "127.0.0.1",
    "meta.test.internal": "169.254.169.254",
    "ten.test.internal": "10.255.0.1",
}
PROXY_PORT = 3128
GRPC_PORT = 50053  # where an egress would listen on TCP; nothing may answer there
GRPC_DIR = "/run/sandbox-mesh/egress"
EGRESS_UID = 10001


def _cert(subject: str, key, issuer_name, issuer_key, *, ca: bool, names=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_certs(directory: pathlib.Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("egress test CA", ca_key, None, None, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("pkgs.test.internal", key, ca.subject, ca_key, ca=False, names=UPSTREAM_NAMES)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (directory / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    for path in directory.iterdir():
        path.chmod(0o644)  # a throw-away test key, read by uid 10001 in the upstream container
    directory.chmod(0o755)


class Egress:
    def __init__(self, name: str, container, proxy_host: str, grpc_socket: pathlib.Path):
        self.name, self.container, self.proxy_host = name, container, proxy_host
        self.grpc_socket = grpc_socket  # on this host
        self.grpc_target = f"unix:{grpc_socket}"
        self.channel = self.stub = None

    def decisions(self, execution_id: str):
        return self.stub.GetDecisions(pb.GetDecisionsRequest(execution_id=execution_id), timeout=10).decisions

    def admit(self, execution_id: str, address: str) -> None:
        self.stub.Admit(pb.AdmitRequest(execution_id=execution_id, address=address), timeout=10)

    def revoke(self, execution_id: str) -> bool:
        return self.stub.Revoke(pb.RevokeRequest(execution_id=execution_id), timeout=10).was_admitted


class Mesh:
    def __init__(self, client: docker.DockerClient, tmp: pathlib.Path):
        self.client = client
        self.tmp = tmp
        self.run_id = secrets.token_hex(4)
        self.labels = {ROLE: "test", TEST_LABEL: self.run_id}
        self.containers: list = []
        self.networks: list = []
        self.secret = secrets.token_urlsafe(32)
        self.channels: list = []
        self.egress = None
        self.egresses: list[Egress] = []

    # --- lifecycle ----------------------------------------------------------

    def network(self, name: str, internal: bool = True):
        net = self.client.networks.create(
            f"egress-test-{name}-{self.run_id}",
            driver="bridge",
            internal=internal,
            enable_ipv6=False,
            labels=self.labels,
            check_duplicate=True,
        )
        self.networks.append(net)
        return net

    def container(self, image: str, command, network, **kwargs):
        kwargs.setdefault("labels", self.labels)
        container = self.client.containers.create(image, command, network=network.name, detach=True, **kwargs)
        self.containers.append(container)
        container.start()
        container.reload()
        return container

    def start_sandbox(self, **kwargs):
        """A sandbox-like container on the inner network with the client script."""
        return self.container(
            RUNTIME_IMAGE,
            ["sleep", "600"],
            self.inner,
            user="10001",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            tmpfs={"/tmp": "size=128m,uid=10001,gid=10001,mode=0700"},
            volumes={
                str(self.tmp / "certs" / "ca.pem"): {"bind": "/certs/ca.pem", "mode": "ro"},
                str(HERE / "sandbox_client.py"): {"bind": "/client/client.py", "mode": "ro"},
            },
            **kwargs,
        )

    def address(self, container, network) -> str:
        container.reload()
        return container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]

    def teardown(self) -> None:
        for container in reversed(self.containers):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        for net in reversed(self.networks):
            with contextlib.suppress(docker.errors.NotFound):
                net.remove()
        filters = {"label": f"{TEST_LABEL}={self.run_id}"}
        left = self.client.containers.list(all=True, filters=filters) + self.client.networks.list(filters=filters)
        assert left == [], f"left behind: {left}"

    def start_egress(self, name: str, env_overrides: dict, networks=None, tmpfs: dict | None = None) -> Egress:
        """An egress container on the inner network plus ``networks`` (default:
        the outer one), running this working tree; ``tmpfs``: more writable
        directories of its own."""
        grpc_dir = self.tmp / f"grpc-{name}"
        grpc_dir.mkdir()
        os.chown(grpc_dir, EGRESS_UID, EGRESS_UID)  # the suite runs as root, like the engine
        env = {
            "EGRESS_SECRET": self.secret,
            "EGRESS_LISTEN": f"0.0.0.0:{PROXY_PORT}",
            "EGRESS_GRPC_LISTEN": f"unix:{GRPC_DIR}/grpc.sock",
            "EGRESS_CONFDIR": "/var/lib/sandbox-mesh/egress",
            # The working tree, not what the image was built with.
            "PYTHONPATH": "/src:/src/stubs",
            **self.base_env,
            **env_overrides,
        }
        volumes = {
            str(ROOT / "services"): {"bind": "/src/services", "mode": "ro"},
            str(ROOT / "stubs"): {"bind": "/src/stubs", "mode": "ro"},
            str(self.tmp / "hosts"): {"bind": "/etc/egress/hosts", "mode": "ro"},
            str(self.tmp / "certs" / "ca.pem"): {"bind": "/etc/egress/upstream-ca.pem", "mode": "ro"},
            str(grpc_dir): {"bind": GRPC_DIR, "mode": "rw"},
        }
        container = self.container(
            SERVICES_IMAGE,
            ["/opt/venv/bin/python", "-m", "services.egress"],
            self.inner,
            user="10001",
            environment=env,
            working_dir="/src",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            sysctls={"net.ipv4.ip_forward": "0"},  # as in compose
            tmpfs={"/var/lib/sandbox-mesh/egress": "size=8m,uid=10001", "/tmp": "size=8m", **(tmpfs or {})},
            volumes=volumes,
        )
        for net in networks or [self.outer]:
            net.connect(container)
        egress = Egress(name, container, self.address(container, self.inner), grpc_dir / "grpc.sock")
        egress.channel = grpc.insecure_channel(egress.grpc_target)
        self.channels.append(egress.channel)
        health = health_pb2_grpc.HealthStub(egress.channel)

        def serving() -> bool:
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError as exc:
                container.reload()
                if container.status == "exited":
                    raise AssertionError("egress exited: " + container.logs().decode()[-3000:]) from exc
                return False

        _wait(serving, f"the {name} egress's gRPC health check")
        signed = grpc.intercept_channel(egress.channel, ClientAuthInterceptor(self.secret.encode()))
        egress.stub = egress_pb2_grpc.EgressStub(signed)
        if self.egress is None:
            self.egress, self.proxy_host, self.egress_stub = container, egress.proxy_host, egress.stub
        self.egresses.append(egress)
        return egress

    # --- helpers for tests --------------------------------------------------

    def admit(self, execution_id: str, container=None) -> None:
        """What the spawner does once a sandbox started: admit its execution,
        from its address, at every egress of the suite."""
        address = self.address(container or self.sandbox, self.inner)
        for egress in self.egresses:
            egress.admit(execution_id, address)

    def auth(self, execution_id: str, tenant: str = "tenant-a", secret: str | None = None) -> str:
        """The Proxy-Authorization value for the suite's sandbox, admitted."""
        self.admit(execution_id)
        token = egress_token.mint(secret or self.secret, execution_id, tenant, 600)
        return egress_token.proxy_authorization(execution_id, token)

    def sandbox_exec(self, argv: list[str], env: dict | None = None, timeout: int = 180) -> tuple[int, str]:
        code, output = self.sandbox.exec_run(["timeout", str(timeout), *argv], user="10001", environment=env or {})
        return code, output.decode("utf-8", "replace")

    def run_client(self, request: dict, timeout: int = 30, sandbox=None) -> dict:
        code, output = (sandbox or self.sandbox).exec_run(
            ["timeout", str(timeout), "python3", "/client/client.py", json.dumps(request)], user="10001"
        )
        text = output.decode("utf-8", "replace").strip()
        assert code == 0, f"client exited {code}: {text}"
        return json.loads(text.splitlines()[-1])

    def tunnel(
        self,
        target: str,
        *,
        auth: str | None,
        sni: str | None = "",
        host_header: str | None = None,
        proxy_host: str | None = None,
        cadata: str | None = None,
        method: str = "GET",
        headers: dict | None = None,
        body: str = "",
        path: str = "/hello",
    ) -> dict:
        request = dict(
            op="tunnel",
            proxy_host=proxy_host or self.proxy_host,
            proxy_port=PROXY_PORT,
            target=target,
            auth=auth,
            ca="/certs/ca.pem",
            cadata=cadata,
            host_header=host_header,
            method=method,
            headers=headers or {},
            body=body,
            path=path,
        )
        request["sni"] = target.rsplit(":", 1)[0] if sni == "" else sni
        return self.run_client(request)

    def plain(self, url: str, host_header: str, *, auth: str | None) -> dict:
        return self.run_client(
            dict(
                op="plain",
                proxy_host=self.proxy_host,
                proxy_port=PROXY_PORT,
                url=url,
                host_header=host_header,
                auth=auth,
            )
        )

    def decision_lines(self) -> list[dict]:
        lines = []
        for raw in self.egress.logs(stdout=True, stderr=False).decode("utf-8", "replace").splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
        return lines

    def upstream_accepts(self) -> int:
        logs = self.upstream.logs(stdout=True, stderr=False).decode("utf-8", "replace").splitlines()
        return sum(1 for line in logs if '"accept"' in line)

    def upstream_requests(self, path: str) -> int:
        """GETs the upstream answered for ``path``."""
        logs = self.upstream.logs(stdout=True, stderr=False).decode("utf-8", "replace").splitlines()
        return sum(
            1 for line in logs if line.startswith("{") and json.loads(line) == {"event": "request", "path": path}
        )

    def decisions(self, execution_id: str):
        return self.egress_stub.GetDecisions(pb.GetDecisionsRequest(execution_id=execution_id), timeout=10).decisions


def _wait(predicate, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def mesh(tmp_path_factory):
    client = docker.from_env(version="auto", timeout=120)
    for image in (RUNTIME_IMAGE, SERVICES_IMAGE):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.fail(f"{image} is missing; run `make images`")
    tmp = tmp_path_factory.mktemp("egress")
    tmp.chmod(0o755)
    certs = tmp / "certs"
    certs.mkdir()
    make_certs(certs)
    m = Mesh(client, tmp)
    try:
        inner, outer = m.network("inner"), m.network("outer")
        m.inner, m.outer = inner, outer
        m.upstream = m.container(
            RUNTIME_IMAGE,
            ["python3", "/upstream/server.py", "/certs"],
            outer,
            user="10001",
            sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
            cap_drop=["ALL"],
            volumes={
                str(certs): {"bind": "/certs", "mode": "ro"},
                str(HERE / "upstream_server.py"): {"bind": "/upstream/server.py", "mode": "ro"},
            },
        )
        _wait(lambda: b"ready" in m.upstream.logs(), "the upstream server")
        upstream_ip = m.address(m.upstream, outer)
        outer_subnet = client.api.inspect_network(outer.id)["IPAM"]["Config"][0]["Subnet"]

        hosts = [f"{upstream_ip} {' '.join(UPSTREAM_NAMES)}"] + [f"{a} {n}" for n, a in REFUSED_NAMES.items()]
        (tmp / "hosts").write_text("\n".join(hosts) + "\n")
        (tmp / "hosts").chmod(0o644)
        m.base_env = {
            "EGRESS_ALLOW_HOSTS": ",".join(UPSTREAM_NAMES + list(REFUSED_NAMES)),
            "EGRESS_ALLOW_NETWORKS": outer_subnet,
            "EGRESS_HOSTS_FILE": "/etc/egress/hosts",
            "EGRESS_DNS": "false",
            "EGRESS_ALLOW_PLAIN_HTTP": "true",
        }
        m.start_egress("passthrough", {})
        m.sandbox = m.start_sandbox()
        m.upstream_ip = upstream_ip
        yield m
    finally:
        for channel in m.channels:
            channel.close()
        m.teardown()
        client.close()


@pytest.fixture(scope="session")
def registry_egress(mesh):
    hosts = derive("sandbox-mesh/runtime:local", api=mesh.client)
    addresses = sorted(
        {info[4][0] for host in hosts for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)}
    )
    networks = [str(ipaddress.ip_network(a)) for a in addresses]
    wan = mesh.network("wan", internal=False)
    return mesh.start_egress(
        "registries",
        {
            "EGRESS_ALLOW_HOSTS": ",".join(hosts),
            "EGRESS_DNS": "true",
            "EGRESS_HOSTS_FILE": "",
            "EGRESS_ALLOW_NETWORKS": ",".join(networks),
            "EGRESS_ALLOW_PLAIN_HTTP": "false",
        },
        networks=[wan],
    )


# Where the intercepting egress publishes its CA certificate (never the key).
INTERCEPT_CA_PATH = "/tmp/egress-ca.pem"


@pytest.fixture(scope="session")
def intercept(mesh):
    egress = mesh.start_egress(
        "intercept",
        {
            "EGRESS_MODE": "intercept",
            "EGRESS_UPSTREAM_CA": "/etc/egress/upstream-ca.pem",
            "EGRESS_CA_CERT_EXPORT": INTERCEPT_CA_PATH,
        },
    )
    code, pem = egress.container.exec_run(["cat", INTERCEPT_CA_PATH], user="10001")
    assert code == 0 and pem.count(b"BEGIN CERTIFICATE") == 1 and b"PRIVATE KEY" not in pem
    egress.ca_pem = pem.decode()
    return egress


CACHE_DIR = "/var/lib/sandbox-mesh/egress-cache"
CACHE_METRICS_PORT = 9465


@pytest.fixture(scope="session")
def caching(mesh):
    """An intercepting egress with a package cache (on a tmpfs of its own)."""
    egress = mesh.start_egress(
        "caching",
        {
            "EGRESS_MODE": "intercept",
            "EGRESS_UPSTREAM_CA": "/etc/egress/upstream-ca.pem",
            "EGRESS_CA_CERT_EXPORT": INTERCEPT_CA_PATH,
            "EGRESS_CACHE_DIR": CACHE_DIR,
            "EGRESS_CACHE_MAX_BYTES": str(1024 * 1024),
            # Loopback inside the egress's container: no network reaches it.
            "EGRESS_METRICS_LISTEN": f"127.0.0.1:{CACHE_METRICS_PORT}",
        },
        tmpfs={CACHE_DIR: "size=8m,uid=10001,mode=0700"},
    )
    code, pem = egress.container.exec_run(["cat", INTERCEPT_CA_PATH], user="10001")
    assert code == 0
    egress.ca_pem = pem.decode()
    return egress
