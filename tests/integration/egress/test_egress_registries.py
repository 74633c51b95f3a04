"""A real `pip install` and `npm install` from a sandbox through the egress.

The only test that leaves the machine, and only through the egress: the
allowlist is derived from the runtime image's own pip and npm exactly as the
service derives it, and the addresses those names resolve to here are exempted
one by one (on the build machines registry traffic goes through a
TLS-intercepting gateway on private addresses, which the egress otherwise
refuses). The sandbox itself stays on the internal network.
"""

from __future__ import annotations

import secrets

import pytest

from sandbox.egress.v1 import egress_pb2 as pb
from services.common.contract import egress_token

pytestmark = pytest.mark.integration

PROXY_PORT = 3128


def proxy_env(mesh, egress, execution_id):
    mesh.admit(execution_id)
    token = egress_token.mint(mesh.secret, execution_id, "tenant-a", 600)
    url = f"http://{execution_id}:{token}@{egress.proxy_host}:{PROXY_PORT}"
    return {
        "HTTPS_PROXY": url,
        "HTTP_PROXY": url,
        "https_proxy": url,
        "http_proxy": url,
        "npm_config_https_proxy": url,
        "npm_config_proxy": url,
    }


def test_pip_install_through_the_egress(mesh, registry_egress):
    execution_id = f"pip-{secrets.token_hex(4)}"
    code, out = mesh.sandbox_exec(
        [
            "pip3",
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--target",
            f"/tmp/{execution_id}",
            "six==1.16.0",
        ],
        env=proxy_env(mesh, registry_egress, execution_id),
    )
    assert code == 0, out[-3000:]
    code, out = mesh.sandbox_exec(
        ["python3", "-c", "import six; print(six.__version__)"], env={"PYTHONPATH": f"/tmp/{execution_id}"}
    )
    assert out.strip() == "1.16.0"
    decisions = list(registry_egress.decisions(execution_id))
    assert decisions and all(d.verdict == pb.VERDICT_ALLOW for d in decisions), decisions
    assert len({d.host for d in decisions}) >= 2  # the index and the file host


def test_npm_install_through_the_egress(mesh, registry_egress):
    execution_id = f"npm-{secrets.token_hex(4)}"
    code, out = mesh.sandbox_exec(
        [
            "npm",
            "install",
            "--prefix",
            f"/tmp/{execution_id}",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--cache",
            f"/tmp/{execution_id}-cache",
            "is-number@7.0.0",
        ],
        env=proxy_env(mesh, registry_egress, execution_id),
    )
    assert code == 0, out[-3000:]
    code, out = mesh.sandbox_exec(
        ["node", "-e", f"console.log(require('/tmp/{execution_id}/node_modules/is-number')(5))"]
    )
    assert out.strip() == "true", out
    decisions = list(registry_egress.decisions(execution_id))
    assert decisions and all(d.verdict == pb.VERDICT_ALLOW for d in decisions), decisions
