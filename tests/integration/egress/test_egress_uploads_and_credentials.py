"""Registry abuse and stolen credentials, against a real egress and real
sandboxes (issue 11, points 7 and 8):

- through the intercepting egress a sandbox may only read: a POST or PUT to
  an allowed host (the suite's decoy upstream) is refused with 403 and a
  recorded decision, and nothing reaches the upstream; a large upload is cut
  off unread;
- an execution's proxy credential works only from its own sandbox, and only
  until the execution ends;
- the egress's gRPC service is out of a sandbox's reach.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.parse

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.egress.v1 import egress_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2 as spawner_pb
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.common.contract import egress_token
from services.spawner.server import start
from tests.integration.conftest import SECRET, assert_nothing_left, make_settings
from tests.integration.egress.conftest import GRPC_PORT, PROXY_PORT
from tests.integration.helpers import request

pytestmark = pytest.mark.integration

UPSTREAM = "pkgs.test.internal:443"


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def request_decisions(egress, execution_id):
    return [(d.kind, d.verdict, d.reason) for d in egress.decisions(execution_id)]


@pytest.mark.parametrize(
    "method, headers, body, reason",
    [
        ("POST", {"Content-Type": "application/octet-stream"}, "exfiltrated", "method_not_allowed"),
        ("PUT", {}, "a package upload", "method_not_allowed"),
        ("GET", {}, "a body on a read", "request_body_refused"),
        ("GET", {"Upgrade": "websocket", "Connection": "Upgrade"}, "", "upgrade_refused"),
    ],
)
def test_writes_through_the_intercepting_egress_refused(mesh, intercept, method, headers, body, reason):
    execution_id = new_id("upload")
    if body:
        headers = {**headers, "Content-Length": str(len(body))}
    before = mesh.upstream_accepts()
    out = mesh.tunnel(
        UPSTREAM,
        auth=mesh.auth(execution_id),
        proxy_host=intercept.proxy_host,
        cadata=intercept.ca_pem,
        method=method,
        headers=headers,
        body=body,
    )
    assert out["tls"] == "ok" and out["inner_status"] == 403, out
    assert mesh.upstream_accepts() == before  # nothing reached the upstream
    assert request_decisions(intercept, execution_id) == [
        ("connect", pb.VERDICT_ALLOW, "allowed"),
        ("request", pb.VERDICT_DENY, reason),
    ]


def test_a_large_upload_is_cut_off_unread(mesh, intercept):
    execution_id = new_id("upload")
    before = mesh.upstream_accepts()
    out = mesh.tunnel(
        UPSTREAM,
        auth=mesh.auth(execution_id),
        proxy_host=intercept.proxy_host,
        cadata=intercept.ca_pem,
        method="PUT",
        headers={"Content-Length": str(100 * 1024 * 1024)},
        body="the first bytes of a large upload",
    )
    assert out["tls"] == "ok" and out["inner_status"] is None, out  # closed, no answer
    assert mesh.upstream_accepts() == before
    assert request_decisions(intercept, execution_id)[-1] == ("request", pb.VERDICT_DENY, "method_not_allowed")


def test_reads_still_pass(mesh, intercept):
    execution_id = new_id("read")
    out = mesh.tunnel(
        UPSTREAM, auth=mesh.auth(execution_id), proxy_host=intercept.proxy_host, cadata=intercept.ca_pem, method="HEAD"
    )
    assert out["tls"] == "ok" and out["inner_status"] == 200, out


def test_the_egress_grpc_is_out_of_a_sandbox_reach(mesh, intercept):
    for egress in mesh.egresses:
        assert mesh.run_client(dict(op="direct", host=egress.proxy_host, port=PROXY_PORT))["connected"] is True
        out = mesh.run_client(dict(op="direct", host=egress.proxy_host, port=GRPC_PORT))
        assert out["connected"] is False, (egress.name, out)


def test_unadmitted_credentials_refused(mesh):
    """A well-signed credential the spawner never admitted is worth nothing."""
    execution_id = new_id("unadmitted")
    token = egress_token.mint(mesh.secret, execution_id, "tenant-a", 600)
    out = mesh.tunnel(UPSTREAM, auth=egress_token.proxy_authorization(execution_id, token))
    assert (out["status"], out["reason"]) == (407, "credentials_not_admitted"), out


# --- credentials of a real execution ------------------------------------------

THIEF = """
import os, sys, time, urllib.error, urllib.request
with urllib.request.urlopen("https://pkgs.test.internal/hello", timeout=20) as reply:
    print("get", reply.status, flush=True)
upload = urllib.request.Request("https://pkgs.test.internal/upload", data=b"secret data", method="POST")
try:
    urllib.request.urlopen(upload, timeout=20)
    print("post allowed", flush=True)
except urllib.error.HTTPError as refused:
    print("post", refused.code, refused.headers.get("X-Egress-Reason"), flush=True)
print("proxy", os.environ["HTTPS_PROXY"], flush=True)
time.sleep(50)  # until cancelled
"""


def _authorization(proxy_url: str) -> str:
    parts = urllib.parse.urlsplit(proxy_url)
    user, token = urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password)
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


@pytest.fixture
def spawner_stub(mesh, intercept, docker_api, tmp_path):
    root = tmp_path / "workspaces"
    root.mkdir()
    ca = tmp_path / "egress-ca.pem"
    ca.write_text(intercept.ca_pem)
    ca.chmod(0o644)
    name = f"egr-{secrets.token_hex(4)}"
    running = start(
        make_settings(
            name,
            root,
            egress_container=intercept.container.id,
            egress_proxy_port=PROXY_PORT,
            egress_secret=mesh.secret,
            egress_grpc=intercept.grpc_target,
            egress_ca_cert=str(ca),
        )
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode())))
    channel.close()
    running.stop(grace_seconds=5)
    assert running.spawner.cleanup_failures == 0
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


def test_a_credential_works_only_in_its_sandbox_and_only_while_it_runs(mesh, intercept, spawner_stub):
    req = request({"main.py": THIEF}, network=True, timeout_ms=60_000)
    call = spawner_stub.Execute(req, timeout=180)
    stdout, result = b"", None
    copied = after = None
    for event in call:
        kind = event.WhichOneof("event")
        if kind == "stdout":
            stdout += event.stdout.data
            if copied is None and b"proxy " in stdout and stdout.endswith(b"\n"):
                proxy_url = stdout.split(b"proxy ", 1)[1].split(b"\n", 1)[0].decode()
                # Copied to another sandbox (the suite's, on a network the
                # egress shares with it), used while its execution still runs:
                copied = mesh.tunnel(
                    UPSTREAM, auth=_authorization(proxy_url), proxy_host=intercept.proxy_host, cadata=intercept.ca_pem
                )
                spawner_stub.Cancel(
                    spawner_pb.CancelRequest(execution_id=req.execution_id, tenant=req.tenant), timeout=10
                )
        elif kind == "result":
            result = event.result
    assert result is not None and result.status == common.EXECUTION_STATUS_CANCELLED, (result, stdout)
    lines = stdout.decode().splitlines()
    assert lines[0] == "get 200"
    assert lines[1] == "post 403 method_not_allowed"  # an upload from inside the execution
    assert copied is not None and (copied["status"], copied["reason"]) == (407, "credentials_wrong_source"), copied
    # The execution is over: its credential is dead, wherever it is used from.
    after = mesh.tunnel(
        UPSTREAM, auth=_authorization(proxy_url), proxy_host=intercept.proxy_host, cadata=intercept.ca_pem
    )
    assert (after["status"], after["reason"]) == (407, "credentials_revoked"), after
    # The execution's own record holds what it did, not what the copies did.
    assert request_decisions(intercept, req.execution_id) == [
        ("connect", pb.VERDICT_ALLOW, "allowed"),
        ("request", pb.VERDICT_ALLOW, "allowed"),
        ("connect", pb.VERDICT_ALLOW, "allowed"),
        ("request", pb.VERDICT_DENY, "method_not_allowed"),
    ]
    refused = [line["reason"] for line in _lines_of(intercept) if line.get("claimed_user") == req.execution_id]
    assert refused == ["credentials_wrong_source", "credentials_revoked"]


def _lines_of(egress):
    out = []
    for raw in egress.container.logs(stdout=True, stderr=False).decode("utf-8", "replace").splitlines():
        if raw.startswith("{"):
            out.append(json.loads(raw))
    return out
