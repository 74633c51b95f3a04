"""sandbox.egress.v1.Egress, served by grpc.aio on the addon's own event loop."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc

from sandbox.egress.v1 import egress_pb2 as pb
from sandbox.egress.v1 import egress_pb2_grpc
from services.common import grpc_server
from services.common.contract.ids import ID_RE, ID_RULE
from services.common.tracing import AsyncServerTraceInterceptor
from services.egress.admissions import AdmissionError, Admissions
from services.egress.audit import ALLOW, Record

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Egress"].full_name
# The only caller is the spawner: Admit and Revoke once per execution with
# packages, GetDecisions once per failed one.
MAX_CONCURRENT_RPCS = 64

DecisionSource = Callable[[str], tuple[list[Record], int]]

log = logging.getLogger(__name__)


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
ADMIT = f"/{SERVICE_NAME}/Admit"
REVOKE = f"/{SERVICE_NAME}/Revoke"


class EgressServicer(egress_pb2_grpc.EgressServicer):
    """Calls are signed like every service-to-service call (the interceptor
    of services/common/auth.py, with the egress's shared secret)."""

    def __init__(self, source: DecisionSource, admissions: Admissions):
        self.source = source
        self.admissions = admissions

    async def GetDecisions(self, request: pb.GetDecisionsRequest, context: grpc.aio.ServicerContext):
        await _check_id(request.execution_id, context)
        records, dropped = self.source(request.execution_id)
        return pb.GetDecisionsResponse(decisions=[to_proto(r) for r in records], dropped=dropped)

    async def Admit(self, request: pb.AdmitRequest, context: grpc.aio.ServicerContext):
        await _check_id(request.execution_id, context)
        try:
            self.admissions.admit(request.execution_id, request.address)
        except AdmissionError as exc:
            log.warning("admission refused: %s", exc, extra={"execution_id": request.execution_id})
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"address: {exc}")
        # One line per execution that may use the proxy, in the spawner's trace.
        log.info("admitted", extra={"execution_id": request.execution_id, "address": request.address})
        return pb.AdmitResponse()

    async def Revoke(self, request: pb.RevokeRequest, context: grpc.aio.ServicerContext):
        await _check_id(request.execution_id, context)
        was_admitted = self.admissions.revoke(request.execution_id)
        log.info("revoked", extra={"execution_id": request.execution_id, "was_admitted": was_admitted})
        return pb.RevokeResponse(was_admitted=was_admitted)


async def _check_id(execution_id: str, context: grpc.aio.ServicerContext) -> None:
    if not ID_RE.match(execution_id):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"execution_id: {ID_RULE}")


async def serve_decisions(
    source: DecisionSource, listen: str, secret: bytes, admissions: Admissions | None = None
) -> tuple[grpc.aio.Server, int]:
    """The Egress service on ``listen`` (``host:port``, or ``unix:PATH``: a
    socket only processes that can open the path reach)."""
    # The caller's trace first: the check of its signature runs in it too.
    interceptors = [AsyncServerTraceInterceptor(), grpc_server.async_auth_interceptor(secret)]
    server = grpc.aio.server(maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS, interceptors=interceptors)
    servicer = EgressServicer(source, admissions if admissions is not None else Admissions())
    egress_pb2_grpc.add_EgressServicer_to_server(servicer, server)
    bound = grpc_server.bind_async(server, listen, [SERVICE_NAME])
    await bound.start()
    return server, bound.port
