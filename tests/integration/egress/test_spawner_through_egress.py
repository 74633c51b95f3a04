"""The spawner's package installs go out only through the egress, with
per-execution credentials, and a refusal comes back as EGRESS_DENIED from the
egress's own decision log (not from anything printed)."""

from __future__ import annotations

import secrets

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.spawner.server import start
from services.spawner.spawner import ConfigurationError
from tests.integration.conftest import SECRET, assert_nothing_left, make_settings
from tests.integration.egress.conftest import PROXY_PORT
from tests.integration.helpers import execute, request

pytestmark = pytest.mark.integration


# Each test on both walls: a gVisor sandbox on its network runs under the
# engine's runsc-network runtime.
@pytest.fixture(params=["runc", "gvisor"])
def spawner_via(request, mesh, docker_api, tmp_path):
    """A spawner whose sandboxes each get a network of their own with the
    given egress on it, their only way out."""
    started = []
    root = tmp_path / "workspaces"
    root.mkdir()

    def make(egress, **overrides):
        name = f"egr-{secrets.token_hex(4)}"
        running = start(
            make_settings(
                name,
                root,
                egress_container=egress.container.id,
                egress_proxy_port=PROXY_PORT,
                egress_secret=mesh.secret,
                egress_grpc=egress.grpc_target,
                install_timeout_ms=240_000,
                default_runtime=request.param,
                **overrides,
            )
        )
        started.append((name, running))
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        return spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode())))

    yield make
    for name, running in started:
        running.stop(grace_seconds=5)
        assert running.spawner.cleanup_failures == 0
        assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


@pytest.fixture(scope="module")
def names_only_egress(mesh):
    """An egress that allowlists only the suite's own names, not the registries."""
    return mesh.start_egress("names-only", {})


def test_install_refused_by_the_egress_is_egress_denied(mesh, names_only_egress, spawner_via):
    stub = spawner_via(names_only_egress)
    req = request({"main.py": "print('never runs')"})
    req.packages.add(name="six", version="==1.16.0")
    outcome = execute(stub, req, timeout=300)
    assert outcome.result.status == common.EXECUTION_STATUS_FAILED
    assert outcome.result.error_code == common.ERROR_CODE_EGRESS_DENIED, outcome.result
    assert "not_allowlisted" in outcome.result.error_message
    denied = [d for d in names_only_egress.decisions(req.execution_id) if d.reason == "not_allowlisted"]
    assert denied and all(d.tenant == req.tenant for d in denied)


def test_install_through_the_egress_succeeds(mesh, registry_egress, spawner_via):
    stub = spawner_via(registry_egress)
    req = request({"main.py": "import six\nprint(six.__version__)"})
    req.packages.add(name="six", version="==1.16.0")
    outcome = execute(stub, req, timeout=300)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert outcome.stdout == b"1.16.0\n"
    decisions = list(registry_egress.decisions(req.execution_id))
    assert decisions, "the install did not go through the egress"
    assert all(d.tenant == req.tenant for d in decisions)


def test_printed_refusal_is_not_egress_denied(mesh, registry_egress, spawner_via):
    """Code that prints an egress-looking refusal and fails is a RUNTIME_ERROR:
    the egress refused nothing for it."""
    stub = spawner_via(registry_egress)
    code = "import sys, six\nprint('EGRESS_DENIED: 403 not_allowlisted by egress', file=sys.stderr)\nsys.exit(1)"
    req = request({"main.py": code})
    req.packages.add(name="six", version="==1.16.0")
    outcome = execute(stub, req, timeout=300)
    assert outcome.result.error_code == common.ERROR_CODE_RUNTIME_ERROR, outcome.result


FETCH = """
import json, urllib.request
with urllib.request.urlopen("https://pkgs.test.internal/hello", timeout=20) as reply:
    print(reply.status, json.loads(reply.read())["upstream"])
"""


def test_network_without_packages_and_intercept_ca(mesh, intercept, spawner_via, tmp_path):
    """`network` alone gets a network with the egress on it; with an intercepting
    egress the spawner mounts its CA certificate (never the key) and Python
    trusts it."""
    ca = tmp_path / "egress-ca.pem"
    ca.write_text(intercept.ca_pem)
    ca.chmod(0o644)
    stub = spawner_via(intercept, egress_ca_cert=str(ca))
    outcome = execute(stub, request({"main.py": FETCH}, network=True), timeout=120)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.stderr
    assert outcome.stdout == b"200 ok\n"


def test_a_ca_file_with_a_key_is_refused(mesh, intercept, spawner_via, tmp_path):
    bad = tmp_path / "with-key.pem"
    bad.write_text(intercept.ca_pem + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigurationError, match="private key"):
        spawner_via(intercept, egress_ca_cert=str(bad))


def test_no_network_without_packages_or_network(mesh, names_only_egress, spawner_via):
    stub = spawner_via(names_only_egress)
    code = "import os\nprint(sorted(os.listdir('/sys/class/net')))"
    outcome = execute(stub, request({"main.py": code}), timeout=120)
    assert outcome.stdout == b"['lo']\n"
