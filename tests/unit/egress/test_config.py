"""EGRESS_* settings and the mitmproxy options they become."""

from __future__ import annotations

import pytest

from services.egress.__main__ import allow_hosts, proxy_options
from services.egress.config import EgressSettings


def test_secret_required(monkeypatch):
    for name in ("EGRESS_SECRET", "EGRESS_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError):
        EgressSettings()


def test_options_from_environment(monkeypatch):
    monkeypatch.setenv("EGRESS_SECRET", "s" * 32)
    monkeypatch.setenv("EGRESS_ALLOW_HOSTS", " pkgs.test.internal,*.files.test.internal ,")
    monkeypatch.setenv("EGRESS_ALLOW_NETWORKS", "10.20.0.0/16")
    monkeypatch.setenv("EGRESS_MODE", "intercept")
    monkeypatch.setenv("EGRESS_UPSTREAM_CA", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("EGRESS_LISTEN", "0.0.0.0:3128")
    monkeypatch.setenv("EGRESS_REFUSAL_LOG_BURST", "7")
    settings = EgressSettings()
    assert settings.listen_host_port() == ("0.0.0.0", 3128)
    hosts = allow_hosts(settings)
    assert hosts == ["pkgs.test.internal", "*.files.test.internal"]
    opts = proxy_options(settings, hosts)
    assert opts["egress_mode"] == "intercept"
    assert opts["egress_allow_networks"] == ["10.20.0.0/16"]
    assert opts["ssl_verify_upstream_trusted_ca"] == "/etc/ssl/certs/ca-certificates.crt"
    assert opts["egress_allow_plain_http"] is False and opts["egress_dns"] is True
    assert "egress_secret_file" not in opts
    assert (opts["egress_refusal_log_burst"], opts["egress_refusal_log_interval"]) == (7, 10.0)


def test_bad_mode_refused(monkeypatch):
    monkeypatch.setenv("EGRESS_SECRET", "s" * 32)
    monkeypatch.setenv("EGRESS_MODE", "transparent")
    with pytest.raises(ValueError):
        EgressSettings()


def test_allow_hosts_unset_means_derived_and_empty_means_none_allowed(monkeypatch):
    monkeypatch.setenv("EGRESS_SECRET", "s" * 32)
    monkeypatch.delenv("EGRESS_ALLOW_HOSTS", raising=False)
    assert EgressSettings().allow_hosts is None
    monkeypatch.setenv("EGRESS_ALLOW_HOSTS", "")
    assert allow_hosts(EgressSettings()) == []


def test_cache_and_metrics_settings(monkeypatch):
    monkeypatch.setenv("EGRESS_SECRET", "s" * 32)
    monkeypatch.setenv("EGRESS_ALLOW_HOSTS", "")
    assert (EgressSettings().cache_dir, EgressSettings().metrics_listen) == ("", "")  # off by default
    monkeypatch.setenv("EGRESS_CACHE_DIR", "/var/lib/sandbox-mesh/egress-cache")
    monkeypatch.setenv("EGRESS_CACHE_MAX_BYTES", "1000")
    monkeypatch.setenv("EGRESS_METRICS_LISTEN", "0.0.0.0:9465")
    settings = EgressSettings()
    opts = proxy_options(settings, allow_hosts(settings))
    assert opts["egress_cache_dir"] == "/var/lib/sandbox-mesh/egress-cache"
    assert (opts["egress_cache_max_bytes"], opts["egress_metrics_listen"]) == (1000, "0.0.0.0:9465")
    monkeypatch.setenv("EGRESS_CACHE_MAX_BYTES", "0")
    with pytest.raises(ValueError):
        EgressSettings()
