"""Prints the two metadata headers of one control call, for grpcurl.

    SANDBOX_TENANT_KEY=<tenant key> python -m services.control.sign <tenant> sandbox.control.v1.Control/GetQuota '{}'

prints `-H 'x-sandbox-tenant: ...' -H 'x-sandbox-signature: ...'`, for any
method of sandbox.control.v1.Control or sandbox.control.v1.Artifacts. The
signature covers the request, so pass the same JSON to grpcurl's -d; it is
valid for one call within the replay window (60 s).
"""

from __future__ import annotations

import os
import shlex
import sys

# Imported for their side effect: they register the descriptors of both services.
from sandbox.control.v1 import artifacts_pb2, control_pb2  # noqa: F401
from services.common.auth import HEADER
from services.common.sign import signature
from services.control.auth import TENANT_HEADER


def main() -> int:
    secret = os.environ.get("SANDBOX_TENANT_KEY")
    if len(sys.argv) != 4 or not secret:
        print(__doc__, file=sys.stderr)
        return 2
    tenant, method, body = sys.argv[1:]
    signed = signature(method, body, secret.encode(), principal=tenant)
    headers = [f"{TENANT_HEADER}: {tenant}", f"{HEADER}: {signed}"]
    print(" ".join(f"-H {shlex.quote(h)}" for h in headers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
