"""The egress addon's options: declared for mitmproxy's `load`, checked and
turned into the addon's parts in `configure` (mitmproxy's own pattern).

`apply` refuses, with OptionsError, any setting of mitmproxy's own options
that would let traffic past the checks (eager connections, allow/ignore
hosts, the onboarding app, no upstream verification, HTTP/2 in intercept
mode), and rebuilds only the parts whose options changed.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mitmproxy import exceptions

from services.common.contract import egress_token
from services.egress import policy
from services.egress.audit import DEFAULT_RING_EXECUTIONS, DEFAULT_RING_SIZE, DecisionLog
from services.egress.connections import own_addresses
from services.egress.refusal_limit import DEFAULT_BURST, DEFAULT_INTERVAL_SECONDS
from services.egress.resolver import Resolver, parse_hosts

if TYPE_CHECKING:  # the addon imports this module
    from services.egress.addon import EgressAddon

PASSTHROUGH = "passthrough"
INTERCEPT = "intercept"


def declare(loader) -> None:
    loader.add_option(
        "egress_allow_hosts", Sequence[str], [], "Allowed host names: exact names and *.suffix wildcards."
    )
    loader.add_option(
        "egress_mode",
        str,
        PASSTHROUGH,
        "passthrough (TLS end to end) or intercept (terminate TLS with the egress CA).",
        choices=[PASSTHROUGH, INTERCEPT],
    )
    loader.add_option(
        "egress_allow_plain_http",
        bool,
        False,
        "Allow plain-HTTP requests to port 80 (Host must equal the request-URI host).",
    )
    loader.add_option(
        "egress_secret_file",
        str,
        "",
        "File holding the HMAC secret for proxy credentials (else the secret the addon was made with).",
    )
    loader.add_option(
        "egress_hosts_file", str, "", "hosts(5)-style file consulted before DNS by the egress's own resolver."
    )
    loader.add_option(
        "egress_dns", bool, True, "Resolve names missing from egress_hosts_file with the system resolver."
    )
    loader.add_option(
        "egress_allow_networks",
        Sequence[str],
        [],
        "CIDRs exempt from the global-unicast rule (e.g. a private mirror). "
        "Loopback, link-local, multicast and unspecified stay refused.",
    )
    loader.add_option(
        "egress_own_addresses",
        Sequence[str],
        [],
        "Extra addresses of the proxy itself, always refused as destinations.",
    )
    loader.add_option(
        "egress_grpc_listen",
        str,
        "",
        "host:port or unix:PATH of the sandbox.egress.v1.Egress gRPC service; "
        "empty to disable (no admissions: every credential refused).",
    )
    loader.add_option("egress_ring_size", int, DEFAULT_RING_SIZE, "Decisions kept in memory per execution.")
    loader.add_option(
        "egress_ring_executions", int, DEFAULT_RING_EXECUTIONS, "Executions whose decisions are kept in memory."
    )
    loader.add_option("egress_decision_log", str, "", "Append decision JSON lines to this file instead of stdout.")
    loader.add_option(
        "egress_refusal_log_burst",
        int,
        DEFAULT_BURST,
        "Refusal lines written per source and interval; the rest are counted in one summary line.",
    )
    loader.add_option(
        "egress_refusal_log_interval", float, DEFAULT_INTERVAL_SECONDS, "Seconds of one refusal-log interval."
    )


def apply(addon: EgressAddon, o, updated: set[str]) -> None:
    if o.connection_strategy != "lazy":
        raise exceptions.OptionsError("egress: connection_strategy must be 'lazy' (nothing leaves before every check)")
    if o.onboarding:
        raise exceptions.OptionsError("egress: the onboarding app must be off (onboarding=false)")
    if o.allow_hosts or o.ignore_hosts:
        raise exceptions.OptionsError(
            "egress: allow_hosts/ignore_hosts must stay empty; egress_allow_hosts is the policy"
        )
    if o.ssl_insecure:
        raise exceptions.OptionsError("egress: ssl_insecure must stay off")
    if o.egress_mode not in (PASSTHROUGH, INTERCEPT):
        raise exceptions.OptionsError(f"egress_mode must be {PASSTHROUGH!r} or {INTERCEPT!r}")
    if any(not m.startswith("regular") for m in o.mode):
        raise exceptions.OptionsError("egress: only the regular proxy mode is supported")
    if o.egress_mode == INTERCEPT and o.http2:
        raise exceptions.OptionsError(
            "egress: http2 must be off in intercept mode (only HTTP/1.1 headers tell a request without a body)"
        )
    if "egress_allow_hosts" in updated:
        try:
            addon.allowlist = policy.Allowlist.parse(o.egress_allow_hosts)
        except ValueError as exc:
            raise exceptions.OptionsError(f"egress_allow_hosts: {exc}") from exc
    if "egress_allow_networks" in updated:
        try:
            addon.permitted_networks = policy.parse_networks(o.egress_allow_networks)
        except ValueError as exc:
            raise exceptions.OptionsError(f"egress_allow_networks: {exc}") from exc
    if {"egress_hosts_file", "egress_dns"} & updated:
        hosts = {}
        if o.egress_hosts_file:
            try:
                hosts = parse_hosts(pathlib.Path(o.egress_hosts_file).read_text())
            except (OSError, ValueError) as exc:
                raise exceptions.OptionsError(f"egress_hosts_file: {exc}") from exc
        addon.resolver = Resolver(hosts, use_system=o.egress_dns)
    if {"egress_own_addresses", "listen_host"} & updated:
        addon.own_addresses = own_addresses(o.egress_own_addresses, o.listen_host)
    decision_log_options = {
        "egress_ring_size",
        "egress_ring_executions",
        "egress_decision_log",
        "egress_refusal_log_burst",
        "egress_refusal_log_interval",
    }
    if decision_log_options & updated:
        if o.egress_ring_size < 1 or o.egress_ring_executions < 1:
            raise exceptions.OptionsError("egress ring sizes must be positive")
        if o.egress_refusal_log_burst < 1 or o.egress_refusal_log_interval <= 0:
            raise exceptions.OptionsError("egress refusal-log burst and interval must be positive")
        stream = addon.decision_stream
        if o.egress_decision_log:
            stream = open(o.egress_decision_log, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the proxy
        addon.decisions = DecisionLog(
            o.egress_ring_size,
            o.egress_ring_executions,
            stream,
            refusal_burst=o.egress_refusal_log_burst,
            refusal_interval_seconds=o.egress_refusal_log_interval,
            observer=addon.decision_counts.observe,
        )
    if "egress_secret_file" in updated:
        secret = addon._secret_arg
        if o.egress_secret_file:
            try:
                secret = pathlib.Path(o.egress_secret_file).read_bytes().strip()
            except OSError as exc:
                raise exceptions.OptionsError(f"egress_secret_file: {exc}") from exc
        if not secret or len(secret) < egress_token.MIN_SECRET_BYTES:
            raise exceptions.OptionsError(
                f"egress: a secret of at least {egress_token.MIN_SECRET_BYTES} bytes is required "
                "(egress_secret_file or EGRESS_SECRET)"
            )
        addon.secret = secret
