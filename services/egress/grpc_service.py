"""sandbox.egress.v1.Egress, served by grpc.aio on the addon's own event loop."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from sandbox.egress.v1 import egress_pb2 as pb
from sandbox.egress.v1 import egress_pb2_grpc
from services.common import grpc_server
from services.common.contract.ids import ID_RE, ID_RULE
from services.egress.audit import ALLOW, Record

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Egress"].full_name
# The only caller is the spawner, once per failed execution with packages.
MAX_CONCURRENT_RPCS = 64

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
    """Calls are signed like every service-to-service call (the interceptor
    of services/common/auth.py, with the egress's shared secret)."""

    def __init__(self, source: DecisionSource):
        self.source = source

    async def GetDecisions(self, request: pb.GetDecisionsRequest, context: grpc.aio.ServicerContext):
        if not ID_RE.match(request.execution_id):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"execution_id: {ID_RULE}")
        records, dropped = self.source(request.execution_id)
        return pb.GetDecisionsResponse(decisions=[to_proto(r) for r in records], dropped=dropped)


async def serve_decisions(source: DecisionSource, listen: str, secret: bytes) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS, interceptors=[grpc_server.async_auth_interceptor(secret)]
    )
    egress_pb2_grpc.add_EgressServicer_to_server(EgressServicer(source), server)
    bound = grpc_server.bind_async(server, listen, [SERVICE_NAME])
    await bound.start()
    return server, bound.port
