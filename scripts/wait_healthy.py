"""Waits until a gRPC server's standard health check says SERVING.

usage: python scripts/wait_healthy.py HOST:PORT [SECONDS]
"""

import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    target = sys.argv[1]
    deadline = time.monotonic() + float(sys.argv[2] if len(sys.argv) > 2 else 60)
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with grpc.insecure_channel(target) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                print(f"{target} is SERVING")
                return 0
            last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as exc:
            last = exc.code().name
        time.sleep(0.5)
    print(f"{target} not healthy in time (last: {last})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
