"""What a request may do where the egress sees it (intercepted tunnels, plain
HTTP): GET or HEAD, no body, no upgrade, no CONNECT inside the tunnel. Each
refusal is a decision with its reason; a refused upload is never read."""

from __future__ import annotations

import pytest
from mitmproxy.test import tflow, tutils

from tests.unit.egress.test_addon import ALLOWED, Env, auth, clienthello, connect_flow, run


def intercepted_tunnel():
    env = Env(egress_mode="intercept")
    client = tflow.tclient_conn()
    run(env.addon.http_connect(connect_flow(authorization=auth(), client=client)))
    data = clienthello(connect_flow(client=client), ALLOWED)
    env.addon.tls_clienthello(data)
    assert not data.ignore_connection
    return env, client


def request_flow(method, headers, client, host=ALLOWED, port=443, scheme=b"https", content=b""):
    req = tutils.treq(method=method.encode(), host=host, port=port, scheme=scheme, path=b"/upload", content=content)
    req.headers.clear()
    for name, value in [("Host", host), *headers]:
        req.headers.add(name, value)
    return tflow.tflow(req=req, client_conn=client)


@pytest.mark.parametrize(
    "method, headers, reason",
    [
        ("POST", [("Content-Length", "11")], "method_not_allowed"),
        ("PUT", [("Content-Length", "11")], "method_not_allowed"),
        ("DELETE", [], "method_not_allowed"),
        ("PATCH", [("Content-Length", "0")], "method_not_allowed"),
        ("GET", [("Content-Length", "11")], "request_body_refused"),
        ("GET", [("Upgrade", "websocket"), ("Connection", "Upgrade")], "upgrade_refused"),
    ],
)
def test_writes_refused_in_the_tunnel(method, headers, reason):
    env, client = intercepted_tunnel()
    flow = request_flow(method, headers, client)
    run(env.addon.requestheaders(flow))
    assert flow.response.status_code == 403
    assert flow.response.headers["X-Egress-Reason"] == reason
    records, _ = env.addon.decisions_for("exec-1")
    assert [(r.kind, r.decision, r.reason) for r in records] == [
        ("connect", "allow", "allowed"),
        ("request", "deny", reason),
    ]
    [line] = env.lines()
    assert (line["kind"], line["decision"], line["reason"], line["method"]) == ("request", "deny", reason, method)
    assert line["execution_id"] == "exec-1"


@pytest.mark.parametrize(
    "method, headers, reason",
    [
        ("PUT", [("Content-Length", str(50 * 1024 * 1024))], "method_not_allowed"),
        ("POST", [("Transfer-Encoding", "chunked")], "method_not_allowed"),
        ("GET", [("Transfer-Encoding", "chunked")], "request_body_refused"),
        ("GET", [("Content-Length", "65537")], "request_body_refused"),
    ],
)
def test_a_large_or_chunked_upload_is_closed_unread(method, headers, reason):
    """mitmproxy would read the whole body before sending a refusal: the
    connection is closed instead, and the refusal is recorded all the same."""
    env, client = intercepted_tunnel()
    flow = request_flow(method, headers, client)
    run(env.addon.requestheaders(flow))
    assert flow.response is None and flow.error is not None and flow.error.msg == "Connection killed."
    assert [(line["decision"], line["reason"]) for line in env.lines()] == [("deny", reason)]


def test_reads_pass_in_the_tunnel():
    env, client = intercepted_tunnel()
    for method in ("GET", "HEAD"):
        flow = request_flow(method, [("Accept", "*/*")], client)
        run(env.addon.requestheaders(flow))
        assert flow.response is None and flow.request.data.host == "198.51.100.7"
        flow.response = tutils.tresp(content=b"ok")
        env.addon.response(flow)
    assert [(line["method"], line["decision"]) for line in env.lines()] == [("GET", "allow"), ("HEAD", "allow")]


def test_connect_inside_the_tunnel_refused_and_recorded():
    env, client = intercepted_tunnel()
    inner = connect_flow("files.pkgs.test.internal", authorization=auth(), client=client)
    run(env.addon.http_connect(inner))
    assert inner.response.status_code == 403 and inner.response.headers["X-Egress-Reason"] == "no_tunnel"
    records, _ = env.addon.decisions_for("exec-1")
    assert [(r.kind, r.decision, r.reason) for r in records] == [
        ("connect", "allow", "allowed"),
        ("connect", "deny", "no_tunnel"),
    ]


def test_plain_http_writes_refused_too():
    env = Env(egress_allow_plain_http=True)
    client = tflow.tclient_conn()
    flow = request_flow(
        "POST", [("Proxy-Authorization", auth()), ("Content-Length", "3")], client, port=80, scheme=b"http"
    )
    run(env.addon.requestheaders(flow))
    assert flow.response.status_code == 403 and flow.response.headers["X-Egress-Reason"] == "method_not_allowed"
    [line] = env.lines()
    assert (line["kind"], line["method"], line["execution_id"]) == ("http", "POST", "exec-1")
