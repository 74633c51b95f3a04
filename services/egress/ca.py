"""The intercepting egress's CA. mitmproxy makes it on first use in its
confdir (key and certificate; compose keeps that directory on a volume of
the egress's own, so the CA survives restarts). Sandboxes must trust the
certificate, so it is published to a path the spawner reads: parsed and
written again, so nothing but one certificate can ever leave the confdir.
"""

from __future__ import annotations

import os
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import certs

# mitmproxy's file names in its confdir: <basename>-ca.pem holds the key,
# <basename>-ca-cert.pem the certificate alone.
MITMPROXY_BASENAME = "mitmproxy"
MITMPROXY_CA_CERT = f"{MITMPROXY_BASENAME}-ca-cert.pem"
PUBLISHED_MODE = 0o644


def ensure_ca(confdir: str | os.PathLike, key_size: int) -> None:
    """Makes the CA in ``confdir`` unless it is there, as mitmproxy itself
    would when its proxy starts (which is after the certificate must be
    published)."""
    certs.CertStore.from_store(pathlib.Path(confdir), MITMPROXY_BASENAME, key_size)


def publish_certificate(confdir: str | os.PathLike, destination: str | os.PathLike) -> pathlib.Path:
    """Writes the CA certificate found in ``confdir`` to ``destination``
    (atomically, world-readable). Raises OSError or ValueError."""
    pem = (pathlib.Path(confdir) / MITMPROXY_CA_CERT).read_bytes()
    certificate = x509.load_pem_x509_certificate(pem)
    out = pathlib.Path(destination)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    partial.chmod(PUBLISHED_MODE)
    os.replace(partial, out)
    return out
