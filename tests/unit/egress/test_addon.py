"""The egress addon's hooks, driven with mitmproxy's taddons/tflow helpers.

Names are the suite's own; the resolver answers from a test hosts table (the
system resolver is off), so nothing here touches the network.
"""

from __future__ import annotations

import asyncio
import io
import json
import types

import pytest
from mitmproxy import exceptions, options, tls
from mitmproxy.addons import onboarding, proxyserver
from mitmproxy.proxy import commands, context, events
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import taddons, tflow, tutils

from services.common.contract import egress_token
from services.egress.addon import EgressAddon, Metered
from services.egress.resolver import Resolver, parse_hosts

SECRET = b"k" * 32
NOW = 1_900_000_000.0
ALLOWED = "pkgs.test.internal"
HOSTS = {
    ALLOWED: ["198.51.100.7"],
    "files.pkgs.test.internal": ["198.51.100.8"],
    "loop.pkgs.test.internal": ["127.0.0.1"],
    "meta.pkgs.test.internal": ["169.254.169.254"],
    "ten.pkgs.test.internal": ["10.1.2.3"],
    "mixed.pkgs.test.internal": ["198.51.100.9", "10.0.0.1"],
    "self.pkgs.test.internal": ["198.51.100.99"],
}


def proxy_context():
    """A taddons context with the options the egress checks (declared by
    mitmproxy's proxyserver and onboarding addons) set the way it requires."""
    tctx = taddons.context(proxyserver.Proxyserver(), onboarding.Onboarding())
    tctx.options.update(connection_strategy="lazy", onboarding=False, http2=False)
    return tctx


def run(coro):
    return asyncio.run(coro)


# mitmproxy's test client connection comes from here.
CLIENT_ADDRESS = "127.0.0.1"


class Env:
    """An addon in a taddons context; ``admitted`` executions are admitted
    from the test client's address, as the spawner would have done."""

    def __init__(self, clock=lambda: NOW, admitted=("exec-1", "exec-2"), **opts):
        self.stream = io.StringIO()
        self.addon = EgressAddon(secret=SECRET, decision_stream=self.stream, clock=clock)
        self.tctx = proxy_context()
        self.tctx.master.addons.add(self.addon)
        base = dict(
            egress_allow_hosts=[ALLOWED, "*.pkgs.test.internal"],
            egress_dns=False,
            egress_allow_networks=["198.51.100.0/24"],  # documentation space stands in for "public"
            egress_own_addresses=["198.51.100.99"],
        )
        base.update(opts)
        self.tctx.configure(self.addon, **base)
        self.addon.resolver = Resolver(HOSTS, use_system=False)
        for execution_id in admitted:
            self.addon.admissions.admit(execution_id, CLIENT_ADDRESS)

    def lines(self):
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def env():
    return Env()


def auth(execution_id="exec-1", tenant="tenant-a", ttl=600, now=NOW):
    return egress_token.proxy_authorization(execution_id, egress_token.mint(SECRET, execution_id, tenant, ttl, now=now))


def connect_flow(host=ALLOWED, port=443, authorization=None, client=None):
    req = tutils.treq(
        method=b"CONNECT", scheme=b"", host=host, port=port, authority=f"{host}:{port}".encode(), path=b""
    )
    if authorization is not None:
        req.headers["Proxy-Authorization"] = authorization
    return tflow.tflow(req=req, client_conn=client or tflow.tclient_conn())


def clienthello(flow, sni):
    ctx = context.Context(flow.client_conn, options.Options())
    return tls.ClientHelloData(ctx, types.SimpleNamespace(sni=sni))


def server_connect(env, client, address):
    server = tflow.tserver_conn()
    server.address = address
    server.error = None
    data = ServerConnectionHookData(server=server, client=client)
    env.addon.server_connect(data)
    return server.error


def test_allowed_tunnel_passes_and_pins(env):
    flow = connect_flow(authorization=auth())
    run(env.addon.http_connect(flow))
    assert flow.response is None
    assert flow.request.data.host == "198.51.100.7"  # mitmproxy connects to the checked address
    assert "Proxy-Authorization" not in flow.request.headers
    data = clienthello(flow, "PKGS.test.internal.")
    env.addon.tls_clienthello(data)
    assert data.ignore_connection  # passthrough: TLS end to end
    assert server_connect(env, flow.client_conn, ("198.51.100.7", 443)) is None
    # Only the pinned address: the name itself (a second lookup) is refused.
    assert server_connect(env, flow.client_conn, (ALLOWED, 443))
    assert server_connect(env, flow.client_conn, ("198.51.100.8", 443))
    # Another client connection gets nothing from this pin.
    assert server_connect(env, tflow.tclient_conn(), ("198.51.100.7", 443))
    records, dropped = env.addon.decisions_for("exec-1")
    assert [r.reason for r in records[1:]] == ["upstream_not_pinned"] * 2  # the third came from an unknown client
    assert dropped == 0 and records[0].decision == "allow" and records[0].resolved_address == "198.51.100.7"
    env.addon.clients[flow.client_conn.id].bytes_up = 10
    env.addon.clients[flow.client_conn.id].bytes_down = 20
    env.addon.client_disconnected(flow.client_conn)
    assert [(line["decision"], line["reason"]) for line in env.lines()] == [
        ("deny", "upstream_not_pinned"),
        ("deny", "upstream_not_pinned"),
        ("deny", "upstream_not_pinned"),
        ("allow", "allowed"),
    ]
    line = env.lines()[-1]
    assert line == {
        "time": line["time"],
        "execution_id": "exec-1",
        "tenant": "tenant-a",
        "host": ALLOWED,
        "port": 443,
        "sni": "PKGS.test.internal.",
        "resolved_address": "198.51.100.7",
        "decision": "allow",
        "reason": "allowed",
        "bytes_up": 10,
        "bytes_down": 20,
        "kind": "connect",
        "client": "127.0.0.1:22",
    }


@pytest.mark.parametrize(
    "host, port, status, reason",
    [
        ("elsewhere.test.internal", 443, 403, "not_allowlisted"),
        ("pkgs.test.internal.evil.test", 443, 403, "not_allowlisted"),
        (ALLOWED, 80, 403, "port_not_allowed"),
        (ALLOWED, 8443, 403, "port_not_allowed"),
        ("127.0.0.1", 443, 403, "ip_literal"),
        ("2130706433", 443, 403, "ip_literal"),
        ("0x7f000001", 443, 403, "ip_literal"),
        ("0177.0.0.1", 443, 403, "ip_literal"),
        ("127.1", 443, 403, "ip_literal"),
        ("::1", 443, 403, "ip_literal"),
        ("loop.pkgs.test.internal", 443, 403, "loopback_address"),
        ("meta.pkgs.test.internal", 443, 403, "link_local_address"),
        ("ten.pkgs.test.internal", 443, 403, "private_address"),
        ("mixed.pkgs.test.internal", 443, 403, "private_address"),
        ("self.pkgs.test.internal", 443, 403, "proxy_own_address"),
        ("nowhere.pkgs.test.internal", 443, 502, "unresolvable"),
    ],
)
def test_connect_refused(env, host, port, status, reason):
    flow = connect_flow(host, port, authorization=auth())
    run(env.addon.http_connect(flow))
    assert flow.response.status_code == status
    assert flow.response.headers["X-Egress-Reason"] == reason
    [line] = env.lines()
    assert (line["decision"], line["reason"], line["execution_id"], line["host"]) == ("deny", reason, "exec-1", host)
    records, _ = env.addon.decisions_for("exec-1")
    assert [r.reason for r in records] == [reason]
    assert server_connect(env, flow.client_conn, ("198.51.100.7", 443))


@pytest.mark.parametrize(
    "authorization, reason",
    [
        (None, "credentials_missing"),
        ("Basic !!", "credentials_malformed"),
        (auth(now=NOW - 3600), "credentials_expired"),
        # exec-2's token presented under exec-1's name:
        (
            egress_token.proxy_authorization("exec-1", egress_token.mint(SECRET, "exec-2", "tenant-a", 600, now=NOW)),
            "credentials_bad_signature",
        ),
        (
            egress_token.proxy_authorization(
                "exec-1", egress_token.mint(b"x" * 32, "exec-1", "tenant-a", 600, now=NOW)
            ),
            "credentials_bad_signature",
        ),
    ],
)
def test_connect_needs_credentials(env, authorization, reason):
    flow = connect_flow(authorization=authorization)
    run(env.addon.http_connect(flow))
    assert flow.response.status_code == 407
    assert flow.response.headers["Proxy-Authenticate"].startswith("Basic")
    [line] = env.lines()
    assert line["reason"] == reason and line["execution_id"] == ""
    # Unverified attempts are never stored under the execution they claim.
    assert env.addon.decisions_for("exec-1") == ([], 0)


@pytest.mark.parametrize(
    "sni, reason",
    [
        (None, "sni_missing"),
        ("", "sni_missing"),
        ("files.pkgs.test.internal", "sni_mismatch"),
        ("elsewhere.test.internal", "sni_mismatch"),
        ("198.51.100.7", "sni_mismatch"),
    ],
)
def test_sni_must_equal_connect_host(env, sni, reason):
    flow = connect_flow(authorization=auth())
    run(env.addon.http_connect(flow))
    data = clienthello(flow, sni)
    env.addon.tls_clienthello(data)
    assert data.ignore_connection  # never intercepted: relayed to nowhere
    assert server_connect(env, flow.client_conn, ("198.51.100.7", 443))
    records, _ = env.addon.decisions_for("exec-1")
    assert (records[0].decision, records[0].reason) == ("deny", reason)
    assert [line["reason"] for line in env.lines()] == [reason]


def test_tls_without_connect_and_second_clienthello_refused(env):
    flow = connect_flow(authorization=auth())
    data = clienthello(flow, ALLOWED)
    env.addon.tls_clienthello(data)
    assert data.ignore_connection
    assert server_connect(env, flow.client_conn, ("198.51.100.7", 443))


def test_non_tls_data_in_tunnel_refused(env):
    flow = connect_flow(authorization=auth())
    run(env.addon.http_connect(flow))
    assert server_connect(env, flow.client_conn, ("198.51.100.7", 443))
    assert [line["reason"] for line in env.lines()] == ["tls_required"]


def test_second_connect_on_one_connection_refused(env):
    client = tflow.tclient_conn()
    run(env.addon.http_connect(connect_flow(authorization=auth(), client=client)))
    flow = connect_flow("files.pkgs.test.internal", authorization=auth(), client=client)
    run(env.addon.http_connect(flow))
    assert flow.response.status_code == 403


def plain_flow(url_host, host_header, port=80, authorization=None, client=None, scheme=b"http"):
    req = tutils.treq(host=url_host, port=port, scheme=scheme, path=b"/simple/")
    req.headers.clear()
    if host_header is not None:
        req.headers["Host"] = host_header
    if authorization is not None:
        req.headers["Proxy-Authorization"] = authorization
    return tflow.tflow(req=req, client_conn=client or tflow.tclient_conn())


def test_plain_http_refused_by_default(env):
    flow = plain_flow(ALLOWED, ALLOWED, authorization=auth())
    run(env.addon.requestheaders(flow))
    assert flow.response.status_code == 403
    assert flow.response.headers["X-Egress-Reason"] == "plain_http_refused"


def test_plain_http_needs_credentials_first(env):
    flow = plain_flow(ALLOWED, ALLOWED)
    run(env.addon.requestheaders(flow))
    assert flow.response.status_code == 407


@pytest.mark.parametrize(
    "url_host, host_header, port, status, reason",
    [
        (ALLOWED, ALLOWED, 80, None, "allowed"),
        (ALLOWED, "PKGS.test.internal.:80", 80, None, "allowed"),
        (ALLOWED, "files.pkgs.test.internal", 80, 403, "host_header_mismatch"),
        (ALLOWED, "elsewhere.test.internal", 80, 403, "host_header_mismatch"),
        (ALLOWED, f"{ALLOWED}:8080", 80, 403, "host_header_mismatch"),
        (ALLOWED, None, 80, 403, "host_header_missing"),
        (ALLOWED, ALLOWED + ":x", 80, 403, "host_header_mismatch"),
        ("elsewhere.test.internal", "elsewhere.test.internal", 80, 403, "not_allowlisted"),
        ("127.0.0.1", "127.0.0.1", 80, 403, "ip_literal"),
        (ALLOWED, ALLOWED + ":443", 443, 403, "port_not_allowed"),
        ("ten.pkgs.test.internal", "ten.pkgs.test.internal", 80, 403, "private_address"),
    ],
)
def test_plain_http_when_allowed(url_host, host_header, port, status, reason):
    env = Env(egress_allow_plain_http=True)
    flow = plain_flow(url_host, host_header, port, authorization=auth())
    run(env.addon.requestheaders(flow))
    if status is None:
        assert flow.response is None
        assert flow.request.data.host == "198.51.100.7"  # pinned
        assert flow.request.headers["Host"] == host_header  # untouched
        assert "Proxy-Authorization" not in flow.request.headers
        assert server_connect(env, flow.client_conn, ("198.51.100.7", 80)) is None
        flow.response = tutils.tresp(content=b"hello")
        env.addon.response(flow)
        [line] = env.lines()
        assert (line["kind"], line["decision"], line["bytes_down"]) == ("http", "allow", 5)
    else:
        assert flow.response.status_code == status
        assert flow.response.headers["X-Egress-Reason"] == reason
        assert server_connect(env, flow.client_conn, ("198.51.100.7", 80))


def test_intercept_mode_requests_must_name_the_tunnel_host():
    env = Env(egress_mode="intercept")
    client = tflow.tclient_conn()
    run(env.addon.http_connect(connect_flow(authorization=auth(), client=client)))
    data = clienthello(connect_flow(client=client), ALLOWED)
    env.addon.tls_clienthello(data)
    assert not data.ignore_connection  # intercept: the egress terminates TLS

    good = plain_flow(ALLOWED, ALLOWED, 443, client=client, scheme=b"https")
    run(env.addon.requestheaders(good))
    assert good.response is None and good.request.data.host == "198.51.100.7"
    good.response = tutils.tresp(content=b"abc")
    env.addon.response(good)

    # mitmproxy's transparent HTTP layer inside a tunnel fills in the pinned address as host:
    pinned = plain_flow("198.51.100.7", ALLOWED + ":443", 443, client=client, scheme=b"https")
    run(env.addon.requestheaders(pinned))
    assert pinned.response is None
    pinned.response = tutils.tresp(content=b"")
    env.addon.response(pinned)

    for host, header in [
        ("files.pkgs.test.internal", "files.pkgs.test.internal"),
        (ALLOWED, "elsewhere.test.internal"),
        ("198.51.100.7", "elsewhere.test.internal"),
        ("198.51.100.7", None),
        ("198.51.100.8", ALLOWED),
        (ALLOWED, ALLOWED + ":444"),
    ]:
        bad = plain_flow(host, header, 443, client=client, scheme=b"https")
        run(env.addon.requestheaders(bad))
        assert bad.response.status_code == 403
        assert bad.response.headers["X-Egress-Reason"] == "request_host_mismatch"
    kinds = [(line["kind"], line["decision"], line["reason"]) for line in env.lines()]
    assert kinds == [("request", "allow", "allowed")] * 2 + [("request", "deny", "request_host_mismatch")] * 6
    assert env.lines()[0]["url"] == f"https://{ALLOWED}:443/simple/"


@pytest.mark.parametrize(
    "opts",
    [
        dict(connection_strategy="eager"),
        dict(onboarding=True),
        dict(allow_hosts=["x"]),
        dict(ignore_hosts=["x"]),
        dict(ssl_insecure=True),
        dict(mode=["transparent"]),
        dict(egress_allow_hosts=["10.0.0.1"]),
        dict(egress_allow_networks=["nonsense"]),
        dict(egress_ring_size=0),
        dict(egress_mode="other"),
        dict(egress_hosts_file="/nonexistent/hosts"),
        dict(egress_mode="intercept", http2=True),
    ],
)
def test_configuration_refused(opts):
    env = Env()
    with pytest.raises(exceptions.OptionsError):
        env.tctx.configure(env.addon, **opts)


def test_secret_required(monkeypatch, tmp_path):
    # The secret comes from the settings (EGRESS_SECRET, passed in by
    # __main__) or the file option, never from the addon's own environment.
    monkeypatch.setenv("EGRESS_SECRET", "e" * 16)
    addon = EgressAddon()
    tctx = proxy_context()
    tctx.master.addons.add(addon)  # mitmproxy logs add-time configure errors
    with pytest.raises(exceptions.OptionsError):
        addon.configure({"egress_secret_file"})
    addon = EgressAddon(secret=b"e" * 16)
    tctx = proxy_context()
    tctx.master.addons.add(addon)
    addon.configure({"egress_secret_file"})
    assert addon.secret == b"e" * 16
    short = tmp_path / "short"
    short.write_text("abc")
    good = tmp_path / "good"
    good.write_text("g" * 40 + "\n")
    tctx.configure(addon, egress_secret_file=str(good))
    assert addon.secret == b"g" * 40
    with pytest.raises(exceptions.OptionsError):
        tctx.configure(addon, egress_secret_file=str(short))


def test_hosts_file_option(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("# test resolver\n198.51.100.7 PKGS.test.internal other.test.internal.\n::1 pkgs.test.internal\n")
    env = Env(egress_hosts_file=str(hosts))
    env.tctx.configure(env.addon, egress_hosts_file=str(hosts))
    assert run(env.addon.resolver.resolve(ALLOWED)) == ["198.51.100.7", "::1"]
    assert run(env.addon.resolver.resolve("other.test.internal")) == ["198.51.100.7"]
    assert run(env.addon.resolver.resolve("missing.test.internal")) == []


@pytest.mark.parametrize("text", ["justoneword\n", "999.1.1.1 a.test\n", "127.0.0.1 bad_name\n"])
def test_hosts_file_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_hosts(text)


def test_ring_is_bounded_per_execution():
    env = Env(egress_ring_size=3)
    for _ in range(5):
        flow = connect_flow("elsewhere.test.internal", authorization=auth())
        run(env.addon.http_connect(flow))
    records, dropped = env.addon.decisions_for("exec-1")
    assert len(records) == 3 and dropped == 2


def test_metered_counts_upstream_bytes():
    client, server = tflow.tclient_conn(), tflow.tserver_conn()
    ctx = context.Context(client, options.Options())

    class Inner:
        context = ctx

        def handle_event(self, event):
            yield commands.SendData(server, b"12345")
            yield commands.SendData(client, b"xx")

    from services.egress.addon import ClientState

    state = ClientState(peer="")
    metered = Metered(Inner(), state)
    out = list(metered.handle_event(events.DataReceived(server, b"abcdefg")))
    out += list(metered.handle_event(events.DataReceived(client, b"zzz")))
    assert len(out) == 4
    assert (state.bytes_up, state.bytes_down) == (10, 7)


def test_next_layer_meters_only_the_first_decided_layer(env):
    from mitmproxy.proxy import layer as mlayer
    from mitmproxy.proxy.layers import HttpLayer, modes, tcp
    from mitmproxy.proxy.layers.http import HTTPMode

    ctx = context.Context(tflow.tclient_conn(), env.tctx.options)
    modes.HttpProxy(ctx)  # the mode layer mitmproxy puts on top by itself
    first = mlayer.NextLayer(ctx)
    first.layer = HttpLayer(ctx, HTTPMode.regular)
    env.addon.next_layer(first)
    assert isinstance(first.layer, Metered)
    env.addon.next_layer(first)
    assert not isinstance(first.layer.inner, Metered)  # wrapped once
    child = mlayer.NextLayer(ctx.fork())
    child.layer = tcp.TCPLayer(child.context)
    env.addon.next_layer(child)
    assert isinstance(child.layer, tcp.TCPLayer)
