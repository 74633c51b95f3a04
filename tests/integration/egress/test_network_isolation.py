"""Sandboxes with a network reach the egress's proxy port and nothing else:
not one another (same tenant or not, directly or through the proxy), not the
egress's other ports, not the host behind their network's bridge, and no
resolver (issue 11, point 4 and its DNS paragraph).

Real spawner, real sandboxes, the suite's own egress (conftest.py). Every
address probed is on a network the suite or its spawner made.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading

import docker
import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as spawner_pb
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.spawner.netpool import BRIDGE_OPTIONS, LABEL_POOL
from services.spawner.server import start
from tests.integration.conftest import SECRET, assert_nothing_left, labelled_containers, make_settings
from tests.integration.egress.conftest import HERE, PROXY_PORT, RUNTIME_IMAGE
from tests.integration.helpers import collect, execute, request

pytestmark = pytest.mark.integration

LISTEN_PORT = 8000
LISTENER_SECONDS = 50  # bounded: the test cancels it as soon as the probe is done
# A small, bounded list: the proxy, where an egress's gRPC would be on TCP,
# common service ports, DNS, the spawner's own ports.
PROBED_PORTS = [3128, 50053, 8080, 8081, 22, 53, 80, 443, 9464, 50051]

LISTENER = f"""
import socket, time
me = socket.gethostbyname(socket.gethostname())  # /etc/hosts, no resolver
server = socket.socket()
server.bind(("0.0.0.0", {LISTEN_PORT}))
server.listen(8)
# The port answers on this sandbox's own address: the probe below is real.
probe = socket.create_connection((me, {LISTEN_PORT}), timeout=3)
server.accept()[0].close()
probe.close()
print("listening", me, flush=True)
server.settimeout(1.0)
deadline = time.monotonic() + {LISTENER_SECONDS}
while time.monotonic() < deadline:
    try:
        conn, peer = server.accept()
    except socket.timeout:
        continue
    conn.settimeout(2)
    try:
        data = conn.recv(100)
    except OSError:
        data = b""
    print("accepted", peer[0], data, flush=True)
"""

PROBER = f"""
import base64, json, os, socket, urllib.parse
target = os.environ["TARGET"]
result = {{}}
try:
    with socket.create_connection((target, {LISTEN_PORT}), timeout=5) as s:
        s.sendall(b"data from another execution")
    result["direct"] = "connected"
except OSError as exc:
    result["direct"] = type(exc).__name__
# The same through the egress's proxy, with this execution's credentials.
proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
user = urllib.parse.unquote(proxy.username) + ":" + urllib.parse.unquote(proxy.password)
auth = base64.b64encode(user.encode()).decode()
with socket.create_connection((proxy.hostname, proxy.port), timeout=10) as s:
    s.sendall(("CONNECT " + target + ":{LISTEN_PORT} HTTP/1.1\\r\\nHost: " + target + ":{LISTEN_PORT}\\r\\n"
               "Proxy-Authorization: Basic " + auth + "\\r\\n\\r\\n").encode())
    result["proxy"] = s.recv(200).split(b"\\r\\n", 1)[0].decode()
print(json.dumps(result))
"""

SCAN = """
import concurrent.futures, ipaddress, json, os, socket, struct, urllib.parse
egress = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"]).hostname
routes = []
for line in open("/proc/net/route").read().splitlines()[1:]:
    fields = line.split()
    to_ip = lambda word: str(ipaddress.IPv4Address(struct.pack("<I", int(word, 16))))
    routes.append((fields[0], to_ip(fields[1]), to_ip(fields[2]), to_ip(fields[7])))
on_link = [route for route in routes if route[2] == "0.0.0.0"]
subnet = ipaddress.IPv4Network(on_link[0][1] + "/" + on_link[0][3])
gateway = str(subnet.network_address + 1)  # the engine's gateway address: the host's, if it had one here

def probe(target):
    host, port = target
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "open"
    except ConnectionRefusedError:
        return "closed"  # something there answered
    except OSError:
        return "no answer"
    finally:
        s.close()

ports = [int(p) for p in os.environ["PORTS"].split(",")]
targets = [(host, port) for host in (egress, gateway) for port in ports]
with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
    found = dict(zip(targets, pool.map(probe, targets)))
print(json.dumps({
    "routes": routes, "egress": egress, "gateway": gateway,
    "egress_ports": {str(p): found[(egress, p)] for p in ports},
    "gateway_ports": {str(p): found[(gateway, p)] for p in ports},
}))
"""


def _stub(running):
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    signed = grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode()))
    return channel, spawner_pb2_grpc.SpawnerStub(signed)


@pytest.fixture(scope="module")
def isolated(mesh, docker_api, tmp_path_factory):
    """A spawner with three slots, its sandboxes' only way out the suite's
    passthrough egress."""
    egress = mesh.egresses[0]
    name = f"iso-{secrets.token_hex(4)}"
    root = tmp_path_factory.mktemp("iso-workspaces")
    running = start(
        make_settings(
            name,
            root,
            capacity=3,
            egress_container=egress.container.id,
            egress_proxy_port=PROXY_PORT,
            egress_secret=mesh.secret,
            egress_grpc=egress.grpc_target,
        )
    )
    channel, stub = _stub(running)
    yield name, stub, egress
    channel.close()
    running.stop(grace_seconds=5)
    assert running.spawner.cleanup_failures == 0
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


def _network_of(docker_api, spawner_name: str, execution_id: str) -> dict:
    [container] = labelled_containers(docker_api, spawner_name, execution_id)
    networks = docker_api.inspect_container(container["Id"])["NetworkSettings"]["Networks"]
    assert len(networks) == 1, networks
    return docker_api.inspect_network(next(iter(networks)))


@pytest.mark.parametrize("tenants", [("tenant-a", "tenant-a"), ("tenant-a", "tenant-b")], ids=["same", "other"])
def test_an_execution_cannot_reach_another(isolated, docker_api, tenants):
    spawner_name, stub, egress = isolated
    listener_req = request({"main.py": LISTENER}, network=True, tenant=tenants[0], timeout_ms=60_000)
    lines: queue.Queue = queue.Queue()
    outcome = {}

    def listen():
        stdout = b""
        for event in stub.Execute(listener_req, timeout=120):
            if event.WhichOneof("event") == "stdout":
                stdout += event.stdout.data
                while b"\n" in stdout:
                    line, stdout = stdout.split(b"\n", 1)
                    lines.put(line.decode())
            elif event.WhichOneof("event") == "result":
                outcome["result"] = event.result
        lines.put(None)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    first = lines.get(timeout=90)
    assert first is not None and first.startswith("listening "), (first, outcome)
    address = first.split()[1]

    prober_req = request({"main.py": PROBER}, network=True, tenant=tenants[1], env={"TARGET": address})
    # While both run: each on a network of its own, the egress its only other member.
    probe = stub.Execute(prober_req, timeout=120)
    prober = collect(probe)
    assert prober.result.status == common.EXECUTION_STATUS_COMPLETED, prober.stderr
    seen = json.loads(prober.stdout)
    assert seen["direct"] != "connected", seen
    assert seen["proxy"].startswith("HTTP/1.1 403"), seen  # an IP literal: refused by the egress

    listener_net = _network_of(docker_api, spawner_name, listener_req.execution_id)
    assert listener_net["Internal"] is True and listener_net["EnableIPv6"] is False
    assert listener_net["Options"] == BRIDGE_OPTIONS
    assert listener_net["Labels"][LABEL_POOL]
    members = listener_net["Containers"]
    assert set(members) == {egress.container.id} | {
        c["Id"] for c in labelled_containers(docker_api, spawner_name, listener_req.execution_id)
    }

    stub.Cancel(spawner_pb.CancelRequest(execution_id=listener_req.execution_id, tenant=tenants[0]), timeout=10)
    rest = []
    while (line := lines.get(timeout=60)) is not None:
        rest.append(line)
    thread.join(30)
    assert not [line for line in rest if line.startswith("accepted")], rest
    assert outcome["result"].status == common.EXECUTION_STATUS_CANCELLED, outcome


def test_only_the_egress_proxy_port_answers(isolated):
    """On its network a sandbox finds the egress's proxy port open and every
    other port of the egress closed; the network's gateway address, the
    engine's default route, is nobody's (no host address on the bridge), so
    the host and everything past it are out of reach too."""
    _, stub, _ = isolated
    req = request({"main.py": SCAN}, network=True, env={"PORTS": ",".join(map(str, PROBED_PORTS))})
    outcome = execute(stub, req, timeout=120)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.stderr
    seen = json.loads(outcome.stdout)
    assert seen["egress_ports"] == {str(p): "open" if p == PROXY_PORT else "closed" for p in PROBED_PORTS}, seen
    assert set(seen["gateway_ports"].values()) == {"no answer"}, seen
    # Off its subnet, every route goes through that gateway, which is nobody.
    assert {gateway for _, _, gateway, _ in seen["routes"]} <= {"0.0.0.0", seen["gateway"]}, seen["routes"]


# --- names ---------------------------------------------------------------------

DECOY_NAME = "decoy.test.internal"
DECOY_ANSWER = "127.3.3.3"

RESOLVE = f"""
import json, socket, struct, time
NAME = "{DECOY_NAME}"
query = struct.pack("!HHHHHH", 0x5151, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(label)]) + label.encode() for label in NAME.split(".")) + b"\\0" + struct.pack("!HH", 1, 1)

def summary(reply):
    return "rcode %d, %d answers" % (reply[3] & 15, struct.unpack("!H", reply[6:8])[0])

out = {{}}
started = time.monotonic()
try:
    out["getaddrinfo"] = socket.getaddrinfo(NAME, 443, type=socket.SOCK_STREAM)[0][4][0]
except socket.gaierror:
    out["getaddrinfo"] = "unresolved"
out["getaddrinfo_seconds"] = time.monotonic() - started
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.settimeout(3)
try:
    udp.sendto(query, ("127.0.0.11", 53))
    out["udp"] = summary(udp.recv(512))
except OSError:
    out["udp"] = "no answer"
try:
    with socket.create_connection(("127.0.0.11", 53), timeout=3) as tcp:
        tcp.sendall(struct.pack("!H", len(query)) + query)
        out["tcp"] = summary(tcp.recv(514)[2:])
except OSError:
    out["tcp"] = "no answer"
print(json.dumps(out))
"""


class EngineWhoseDefaultResolverIsTheDecoy(docker.APIClient):
    """The engine as it would be with the decoy as its default DNS server
    (`dns` in daemon.json): a container that names no DNS server of its own
    gets the decoy, at its address on the container's network."""

    decoy_id: str | None = None

    def create_host_config(self, *args, **kwargs):
        network = kwargs.get("network_mode")
        if self.decoy_id and not kwargs.get("dns") and network not in (None, "none"):
            members = self.inspect_network(network).get("Containers") or {}
            kwargs["dns"] = [members[self.decoy_id]["IPv4Address"].partition("/")[0]]
        return super().create_host_config(*args, **kwargs)


def _queries(decoy) -> list[dict]:
    lines = decoy.logs(stdout=True, stderr=False).decode("utf-8", "replace").splitlines()
    return [entry for entry in map(json.loads, lines) if entry["event"] == "query"]


def test_a_sandbox_resolves_no_name(mesh, docker_api, tmp_path):
    """A sandbox's queries go nowhere, whatever the engine's resolver would be.

    Docker's embedded resolver (127.0.0.11, in every container on a
    user-defined network) answers names of the network's members and
    forwards every other name to the container's DNS servers, or else to the
    engine's defaults (the host's resolv.conf, or `dns` in daemon.json), and
    it does so from internal networks too. The suite may not touch this
    machine's resolver, so the engine's default is modelled instead: the
    spawner's Docker client gives a container that names no DNS server the
    decoy (a DNS server of the suite's own serving one made-up name), exactly
    as an engine with `"dns": [<decoy>]` would; and the decoy is this
    spawner's "egress", so the pool connects it to the sandbox's network and
    it is reachable from there (a default resolver a sandbox could not reach
    would prove nothing). Without the spawner's own DNS settings the sandbox's
    query would reach the decoy and the name would resolve. The control run
    shows that: a container on another internal network with the decoy,
    created through the same client with no DNS server of its own, resolves
    the name and the decoy logs the query. With them, the name does not
    resolve (quickly), raw queries to 127.0.0.11 over UDP and TCP get no
    answer, and the decoy receives nothing.
    """
    control_net = mesh.network(f"dnsctl-{secrets.token_hex(3)}")
    decoy = mesh.container(
        RUNTIME_IMAGE,
        ["python3", "/decoy/decoy_dns.py", DECOY_NAME, DECOY_ANSWER],
        control_net,
        user="10001",
        sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
        cap_drop=["ALL"],
        read_only=True,
        volumes={str(HERE / "decoy_dns.py"): {"bind": "/decoy/decoy_dns.py", "mode": "ro"}},
    )
    engine = EngineWhoseDefaultResolverIsTheDecoy(version="auto", timeout=60)
    engine.decoy_id = decoy.id

    # Control: without DNS servers of its own a container's query reaches the decoy.
    host_config = engine.create_host_config(network_mode=control_net.name, cap_drop=["ALL"])
    created = engine.create_container(
        RUNTIME_IMAGE, ["python3", "-c", RESOLVE], user="10001", host_config=host_config, labels=mesh.labels
    )
    try:
        engine.start(created["Id"])
        assert engine.wait(created["Id"], timeout=60)["StatusCode"] == 0
        control = json.loads(engine.logs(created["Id"], stdout=True, stderr=False))
    finally:
        engine.remove_container(created["Id"], force=True)
    assert control["getaddrinfo"] == DECOY_ANSWER and control["udp"] == "rcode 0, 1 answers", control
    reached = len(_queries(decoy))
    assert reached >= 2, _queries(decoy)

    name = f"dns-{secrets.token_hex(4)}"
    root = tmp_path / "workspaces"
    root.mkdir()
    running = start(make_settings(name, root, capacity=1, egress_container=decoy.id), api=engine)
    channel, stub = _stub(running)
    try:
        outcome = execute(stub, request({"main.py": RESOLVE}, network=True), timeout=120)
    finally:
        channel.close()
        running.stop(grace_seconds=5)
        engine.close()
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.stderr
    seen = json.loads(outcome.stdout)
    assert seen["getaddrinfo"] == "unresolved", seen
    assert seen["getaddrinfo_seconds"] < 5, seen  # fails fast rather than hangs
    assert seen["udp"] == "no answer" and seen["tcp"] == "no answer", seen
    assert len(_queries(decoy)) == reached, _queries(decoy)[reached:]
    assert running.spawner.cleanup_failures == 0
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)
