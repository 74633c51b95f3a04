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

# mitmproxy's name for the certificate alone (mitmproxy-ca.pem holds the key).
MITMPROXY_CA_CERT = "mitmproxy-ca-cert.pem"
PUBLISHED_MODE = 0o644


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
