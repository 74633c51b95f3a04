"""Prints an `x-sandbox-signature` value for one call, for grpcurl.

    SERVICE_SECRET=... python -m services.common.sign sandbox.spawner.v1.Spawner/Execute '{"execution_id": ...}'

SERVICE_SECRET is the secret the services share (the spawner's SPAWNER_SECRET,
which is also read). A tenant's key signs calls to control instead:
services.control.sign.

The signature covers the request, so pass the same JSON to grpcurl's -d. It
is valid for one call within the replay window (60 s).
"""

from __future__ import annotations

import os
import sys

from google.protobuf import descriptor_pool, json_format, message_factory

import sandbox.spawner.v1.spawner_pb2  # noqa: F401 - registers the descriptors
from services.common.auth import sign


def signature(method: str, request_json: str, secret: bytes, *, principal: str = "") -> str:
    service_name, _, method_name = method.strip("/").rpartition("/")
    service = descriptor_pool.Default().FindServiceByName(service_name)
    request_class = message_factory.GetMessageClass(service.FindMethodByName(method_name).input_type)
    request = json_format.Parse(request_json, request_class())
    body = request.SerializeToString(deterministic=True)
    return sign(secret, f"/{service_name}/{method_name}", body, principal=principal)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    secret = os.environ.get("SERVICE_SECRET") or os.environ.get("SPAWNER_SECRET")
    if not secret:
        print("set SERVICE_SECRET (SANDBOX_SECRET is no longer read)", file=sys.stderr)
        return 2
    print(signature(sys.argv[1], sys.argv[2], secret.encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
