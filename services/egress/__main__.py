"""`python -m services.egress`: mitmdump's master with the egress addon, until
SIGTERM or SIGINT. Settings from EGRESS_* (services/egress/config.py)."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import signal
import sys

from mitmproxy import exceptions, options
from mitmproxy.tools.dump import DumpMaster

from services.common.logs import setup_logging
from services.common.tracing import TraceLogFilter
from services.egress.addon import EgressAddon
from services.egress.allowlist import derive
from services.egress.ca import ensure_ca, publish_certificate
from services.egress.cache_addon import CacheAddon
from services.egress.config import EgressSettings
from services.egress.metrics import MetricsAddon

log = logging.getLogger("services.egress")


def allow_hosts(settings: EgressSettings) -> list[str]:
    if settings.allow_hosts is not None:
        return list(settings.allow_hosts)
    hosts = derive(settings.runtime_image)
    log.info("allowlist derived from %s: %s", settings.runtime_image, ",".join(hosts))
    return hosts


def proxy_options(settings: EgressSettings, hosts: list[str]) -> dict:
    values = dict(
        egress_allow_hosts=hosts,
        egress_mode=settings.mode,
        egress_allow_plain_http=settings.allow_plain_http,
        egress_hosts_file=settings.hosts_file or "",
        egress_dns=settings.dns,
        egress_allow_networks=list(settings.allow_networks),
        egress_own_addresses=list(settings.own_addresses),
        egress_grpc_listen=settings.grpc_listen,
        egress_ring_size=settings.ring_size,
        egress_ring_executions=settings.ring_executions,
        egress_decision_log=settings.decision_log,
        egress_refusal_log_burst=settings.refusal_log_burst,
        egress_refusal_log_interval=settings.refusal_log_interval_seconds,
        egress_cache_dir=settings.cache_dir,
        egress_cache_max_bytes=settings.cache_max_bytes,
        egress_metrics_listen=settings.metrics_listen,
    )
    if settings.secret_file:
        values["egress_secret_file"] = settings.secret_file
    if settings.upstream_ca:
        values["ssl_verify_upstream_trusted_ca"] = settings.upstream_ca
    return values


async def run(settings: EgressSettings) -> int:
    host, port = settings.listen_host_port()
    if settings.mode == "intercept":
        pathlib.Path(settings.confdir).mkdir(parents=True, exist_ok=True, mode=0o700)
    opts = options.Options(listen_host=host, listen_port=port, confdir=settings.confdir)
    master = DumpMaster(opts, with_termlog=True, with_dumper=False)
    # Set before the addon loads: it refuses to run with anything else.
    # HTTP/1.1 only: there a request without Content-Length or
    # Transfer-Encoding has no body (policy.check_request relies on it).
    opts.update(connection_strategy="lazy", onboarding=False, http2=False, termlog_verbosity="warn")
    secret = settings.secret.get_secret_value().encode() if settings.secret else None
    addon = EgressAddon(secret=secret)
    # The cache acts only on requests the egress addon allowed (and marked).
    cache = CacheAddon()
    master.addons.add(addon, cache, MetricsAddon(addon.decision_counts, lambda: cache.cache))
    try:
        opts.update(**proxy_options(settings, allow_hosts(settings)))
    except exceptions.OptionsError as exc:
        log.error("%s", exc)
        return 2
    if settings.mode == "intercept" and settings.ca_cert_export:
        try:
            ensure_ca(settings.confdir, opts.key_size)
            publish_certificate(settings.confdir, settings.ca_cert_export)
        except (OSError, ValueError) as exc:
            log.error("cannot publish the CA certificate to %s: %s", settings.ca_cert_export, exc)
            return 2
        log.info("CA certificate published to %s", settings.ca_cert_export)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, master.shutdown)
    log.info(
        "egress listening on %s (%s mode, %d allowlist entries)", settings.listen, settings.mode, len(addon.allowlist)
    )
    await master.run()
    return 0


def main() -> int:
    # Admit and Revoke are served in the spawner's trace: their lines name it.
    setup_logging(stream=sys.stderr, filters=[TraceLogFilter()])
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)  # decisions are logged by the addon
    try:
        settings = EgressSettings()
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
