"""Intercept mode: the egress terminates TLS with its own CA (sandboxes get the
CA certificate only), verifies the upstream against a configured CA bundle and
audits every request; each request must name the tunnel's host."""

from __future__ import annotations

import json
import secrets

import pytest

from sandbox.egress.v1 import egress_pb2 as pb

pytestmark = pytest.mark.integration


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_request_through_intercepting_egress(mesh, intercept):
    execution_id = new_id("icpt")
    before = mesh.upstream_accepts()
    out = mesh.tunnel(
        "pkgs.test.internal:443", auth=mesh.auth(execution_id), proxy_host=intercept.proxy_host, cadata=intercept.ca_pem
    )
    assert out["status"] == 200 and out["tls"] == "ok" and out["inner_status"] == 200, out
    body = json.loads(out["body"])
    assert body["upstream"] == "ok" and body["host"] == "pkgs.test.internal"
    assert body["sni"] == "pkgs.test.internal"  # the egress's own TLS to the upstream names the host
    assert mesh.upstream_accepts() == before + 1
    got = [(d.kind, d.verdict, d.reason) for d in intercept.decisions(execution_id)]
    assert got == [("connect", pb.VERDICT_ALLOW, "allowed"), ("request", pb.VERDICT_ALLOW, "allowed")]


def test_upstream_ca_is_not_the_sandbox_ca(mesh, intercept):
    """Without the egress CA the sandbox cannot complete TLS: the egress, not
    the upstream, terminates it."""
    out = mesh.tunnel("pkgs.test.internal:443", auth=mesh.auth(new_id("icpt")), proxy_host=intercept.proxy_host)
    assert out["status"] == 200 and "CERTIFICATE_VERIFY_FAILED" in out["tls"], out


def test_request_for_another_host_inside_the_tunnel_refused(mesh, intercept):
    execution_id = new_id("icpt")
    before = mesh.upstream_accepts()
    out = mesh.tunnel(
        "pkgs.test.internal:443",
        auth=mesh.auth(execution_id),
        proxy_host=intercept.proxy_host,
        cadata=intercept.ca_pem,
        host_header="other.test.internal",
    )
    assert out["tls"] == "ok" and out["inner_status"] == 403, out
    assert mesh.upstream_accepts() == before
    got = [(d.kind, d.verdict, d.reason) for d in intercept.decisions(execution_id)]
    assert got == [("connect", pb.VERDICT_ALLOW, "allowed"), ("request", pb.VERDICT_DENY, "request_host_mismatch")]


def test_sni_mismatch_refused_in_intercept_mode(mesh, intercept):
    execution_id = new_id("icpt")
    before = mesh.upstream_accepts()
    out = mesh.tunnel(
        "pkgs.test.internal:443",
        auth=mesh.auth(execution_id),
        proxy_host=intercept.proxy_host,
        cadata=intercept.ca_pem,
        sni="other.test.internal",
    )
    assert out["tls"].startswith("error"), out
    assert mesh.upstream_accepts() == before
    [decision] = intercept.decisions(execution_id)
    assert (decision.verdict, decision.reason) == (pb.VERDICT_DENY, "sni_mismatch")
