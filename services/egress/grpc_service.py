"""sandbox.egress.v1.Egress, served by grpc.aio on the addon's own event loop."""

from __future__ import annotations

import re
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sandbox.egress.v1 import egress_pb2 as pb
from sandbox.egress.v1 import egress_pb2_grpc
from services.common.auth import HEADER, AuthError, Verifier, single_header
from services.egress.audit import ALLOW, Record

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Egress"].full_name
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

DecisionSource = Callable[[str], tuple[list[Record], int]]


def to_proto(record: Record) -> pb.Decision:
    return pb.Decision(
        time=record.time,
        execution_id=record.execution_id,
        tenant=record.tenant,
        host=record.host,
        port=max(record.port, 0),
        sni=record.sni,
        resolved_address=record.resolved_address,
        verdict=pb.VERDICT_ALLOW if record.decision == ALLOW else pb.VERDICT_DENY,
        reason=record.reason,
        bytes_up=record.bytes_up,
        bytes_down=record.bytes_down,
        kind=record.kind,
        closed=record.closed,
    )


GET_DECISIONS = f"/{SERVICE_NAME}/GetDecisions"


class EgressServicer(egress_pb2_grpc.EgressServicer):
    def __init__(self, source: DecisionSource, verifier: Verifier | None = None):
        self.source = source
        # Calls are signed like every service-to-service call
        # (services/common/auth.py) with the egress's shared secret.
        self.verifier = verifier

    async def GetDecisions(self, request: pb.GetDecisionsRequest, context: grpc.aio.ServicerContext):
        if self.verifier is not None:
            try:
                header = single_header(context.invocation_metadata(), HEADER)
                self.verifier.verify(GET_DECISIONS, request.SerializeToString(deterministic=True), header)
            except AuthError as exc:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if not _ID.match(request.execution_id):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "execution_id: must match [A-Za-z0-9_-]{1,64}")
        records, dropped = self.source(request.execution_id)
        return pb.GetDecisionsResponse(decisions=[to_proto(r) for r in records], dropped=dropped)


async def start(
    source: DecisionSource, listen: str, secret: bytes | None = None
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(maximum_concurrent_rpcs=64)
    verifier = Verifier(secret) if secret else None
    egress_pb2_grpc.add_EgressServicer_to_server(EgressServicer(source, verifier), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise RuntimeError(f"cannot listen on {listen}")
    await server.start()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return server, port
