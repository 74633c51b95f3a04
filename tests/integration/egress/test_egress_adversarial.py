"""Adversarial suite: hostile requests from inside a real sandbox container on
the internal network, through the egress, against the suite's own upstream.

Each case uses its own execution id, so the egress's own decision record
(gRPC GetDecisions, and its JSON log) is checked case by case. A refused case
also proves that the upstream saw no connection at all.
"""

from __future__ import annotations

import json
import secrets

import pytest

from sandbox.egress.v1 import egress_pb2 as pb

pytestmark = pytest.mark.integration


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def only_decision(mesh, execution_id):
    decisions = list(mesh.decisions(execution_id))
    assert len(decisions) == 1, decisions
    return decisions[0]


def test_allowed_host_works_end_to_end(mesh):
    execution_id = new_id("allowed")
    before = mesh.upstream_accepts()
    out = mesh.tunnel("pkgs.test.internal:443", auth=mesh.auth(execution_id))
    assert out["status"] == 200 and out["tls"] == "ok", out
    assert out["inner_status"] == 200
    body = json.loads(out["body"].split("\r\n\r\n")[-1] if "\r\n\r\n" in out["body"] else out["body"])
    assert body["upstream"] == "ok" and body["sni"] == "pkgs.test.internal"  # TLS end to end (passthrough)
    assert mesh.upstream_accepts() == before + 1
    decision = only_decision(mesh, execution_id)
    assert (decision.verdict, decision.reason, decision.host) == (pb.VERDICT_ALLOW, "allowed", "pkgs.test.internal")
    assert decision.resolved_address == mesh.upstream_ip and decision.tenant == "tenant-a"
    lines = [line for line in mesh.decision_lines() if line["execution_id"] == execution_id]
    assert len(lines) == 1 and lines[0]["sni"] == "pkgs.test.internal"
    assert lines[0]["bytes_up"] > 0 and lines[0]["bytes_down"] > 0 and decision.closed


@pytest.mark.parametrize(
    "target, status, reason",
    [
        ("elsewhere.test.internal:443", 403, "not_allowlisted"),
        ("pkgs.test.internal.elsewhere.test:443", 403, "not_allowlisted"),
        ("pkgs.test.internal:8443", 403, "port_not_allowed"),
        # IP literals, five forms and more, written exactly so on the wire:
        ("127.0.0.1:443", 403, "ip_literal"),
        ("2130706433:443", 403, "ip_literal"),
        ("0x7f000001:443", 403, "ip_literal"),
        ("0177.0.0.1:443", 403, "ip_literal"),
        ("127.1:443", 403, "ip_literal"),
        ("[::1]:443", 403, "ip_literal"),
        ("[::ffff:169.254.169.254]:443", 403, "ip_literal"),
        # Allowed names whose (test) resolution is not global unicast:
        ("loop.test.internal:443", 403, "loopback_address"),
        ("meta.test.internal:443", 403, "link_local_address"),
        ("ten.test.internal:443", 403, "private_address"),
    ],
)
def test_refused_destinations(mesh, target, status, reason):
    execution_id = new_id("refused")
    before = mesh.upstream_accepts()
    out = mesh.tunnel(target, auth=mesh.auth(execution_id))
    assert (out["status"], out["reason"]) == (status, reason), out
    decision = only_decision(mesh, execution_id)
    assert (decision.verdict, decision.reason) == (pb.VERDICT_DENY, reason)
    assert mesh.upstream_accepts() == before


@pytest.mark.parametrize("sni, reason", [("other.test.internal", "sni_mismatch"), (None, "sni_missing")])
def test_sni_must_match_connect_host(mesh, sni, reason):
    execution_id = new_id("sni")
    before = mesh.upstream_accepts()
    out = mesh.tunnel("pkgs.test.internal:443", auth=mesh.auth(execution_id), sni=sni)
    assert out["status"] == 200 and out["tls"].startswith("error"), out
    decision = only_decision(mesh, execution_id)
    assert (decision.verdict, decision.reason) == (pb.VERDICT_DENY, reason)
    assert decision.sni == (sni or "")
    assert mesh.upstream_accepts() == before  # closed before any upstream byte


@pytest.mark.parametrize(
    "auth_kind, reason",
    [
        ("missing", "credentials_missing"),
        ("other_execution", "credentials_bad_signature"),
        ("wrong_secret", "credentials_bad_signature"),
    ],
)
def test_credentials_required(mesh, auth_kind, reason):
    execution_id = new_id("creds")
    other = mesh.auth(new_id("victim"))
    auth = {
        "missing": None,
        # Another execution's token, presented under this execution's name:
        "other_execution": mesh.auth(execution_id).split(" ")[0] + " " + _swap_user(other, execution_id),
        "wrong_secret": mesh.auth(execution_id, secret="not-the-egress-secret-0123456789"),
    }[auth_kind]
    before = mesh.upstream_accepts()
    out = mesh.tunnel("pkgs.test.internal:443", auth=auth)
    assert (out["status"], out["reason"]) == (407, reason), out
    assert list(mesh.decisions(execution_id)) == []  # never stored under a claimed id
    # The line of this very connection (its source address and port), not
    # any earlier refusal of the same kind.
    lines = [line for line in mesh.decision_lines() if line["client"] == out["local"]]
    assert len(lines) == 1, (out["local"], lines)
    assert (lines[0]["decision"], lines[0]["reason"], lines[0]["execution_id"]) == ("deny", reason, ""), lines[0]
    assert lines[0].get("claimed_user") == (None if auth_kind == "missing" else execution_id), lines[0]
    assert mesh.upstream_accepts() == before


def _swap_user(header: str, user: str) -> str:
    import base64

    _, encoded = header.split(" ", 1)
    _, token = base64.b64decode(encoded).decode().split(":", 1)
    return base64.b64encode(f"{user}:{token}".encode()).decode()


def test_plain_http_host_must_equal_uri_host(mesh):
    execution_id = new_id("plain")
    before = mesh.upstream_accepts()
    out = mesh.plain("http://pkgs.test.internal/x", "elsewhere.test.internal", auth=mesh.auth(execution_id))
    assert (out["status"], out["reason"]) == (403, "host_header_mismatch"), out
    assert mesh.upstream_accepts() == before
    ok = mesh.plain("http://pkgs.test.internal/x", "pkgs.test.internal", auth=mesh.auth(execution_id))
    assert ok["status"] == 200 and '"upstream": "ok"' in ok["body"], ok
    verdicts = [(d.verdict, d.reason, d.kind) for d in mesh.decisions(execution_id)]
    assert verdicts == [(pb.VERDICT_DENY, "host_header_mismatch", "http"), (pb.VERDICT_ALLOW, "allowed", "http")]


@pytest.mark.parametrize("port", [443, 80])
def test_direct_connection_skipping_the_proxy_fails(mesh, port):
    before = mesh.upstream_accepts()
    out = mesh.run_client(dict(op="direct", host=mesh.upstream_ip, port=port, timeout=3))
    assert out["connected"] is False and out["resolved"] == [mesh.upstream_ip], out
    assert mesh.upstream_accepts() == before


def test_a_registry_name_that_resolves_is_still_unreachable_directly(mesh):
    """A sandbox resolves no name, so "pkgs.test.internal unreachable" alone
    would prove only that. Here the name resolves (an /etc/hosts entry of
    this container's own, pointing at the suite's upstream container): the
    connection still fails, so it is the network that refuses it."""
    resolving = mesh.start_sandbox(extra_hosts={"pkgs.test.internal": mesh.upstream_ip})
    try:
        before = mesh.upstream_accepts()
        out = mesh.run_client(dict(op="direct", host="pkgs.test.internal", port=443, timeout=3), sandbox=resolving)
        assert out["resolved"] == [mesh.upstream_ip], out
        assert out["connected"] is False, out
        assert mesh.upstream_accepts() == before
    finally:
        resolving.remove(force=True)
