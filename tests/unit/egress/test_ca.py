"""The intercepting egress publishes its CA certificate, never the key."""

from __future__ import annotations

import stat

import pytest
from mitmproxy import certs

from services.egress.ca import MITMPROXY_CA_CERT, ensure_ca, publish_certificate

KEY_SIZE = 2048


def test_only_the_certificate_is_published(tmp_path):
    confdir = tmp_path / "conf"
    confdir.mkdir()
    ensure_ca(confdir, KEY_SIZE)  # made on first use
    ensure_ca(confdir, KEY_SIZE)  # and kept
    store = certs.CertStore.from_store(confdir, "mitmproxy", KEY_SIZE)  # what mitmproxy then loads
    # A certificate file that also carries a key is still published as the certificate alone.
    (confdir / MITMPROXY_CA_CERT).write_bytes((confdir / "mitmproxy-ca.pem").read_bytes())
    out = publish_certificate(confdir, tmp_path / "egress-ca.pem")
    text = out.read_text()
    assert text.count("BEGIN CERTIFICATE") == 1 and "PRIVATE KEY" not in text
    assert text.encode() == store.default_ca.to_pem()
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_nothing_published_without_a_certificate(tmp_path):
    (tmp_path / MITMPROXY_CA_CERT).write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError):
        publish_certificate(tmp_path, tmp_path / "egress-ca.pem")
    with pytest.raises(OSError):
        publish_certificate(tmp_path / "missing", tmp_path / "egress-ca.pem")
    assert not (tmp_path / "egress-ca.pem").exists()
