"""Control passes a request's image variant to the spawner and records it
(GetExecution, ListExecutions); a variant the language lacks is refused at
the door with no record."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from tests.integration.control.helpers import request, run

pytestmark = pytest.mark.integration


def test_the_variant_reaches_the_spawner_and_is_recorded(tenant_a, datascience_image):
    code = "import numpy, pandas, scipy, matplotlib\nprint(numpy.arange(4).sum())"
    stream = run(tenant_a, request({"main.py": code}, group_id="s-variant", variant="datascience", timeout_ms=30_000))
    done = stream.finished
    # numpy imports only in the variant's image: the spawner got the variant.
    assert done.status == common.EXECUTION_STATUS_COMPLETED, done
    assert stream.stdout == b"6\n"
    assert done.variant == "datascience"
    assert tenant_a.GetExecution(pb.GetExecutionRequest(execution_id=done.execution_id)).variant == "datascience"
    standard = run(tenant_a, request({"main.py": "print(1)"}, group_id="s-variant")).finished
    assert standard.variant == ""
    listed = tenant_a.ListExecutions(pb.ListExecutionsRequest(group_id="s-variant")).executions
    assert {(e.execution_id, e.variant) for e in listed} == {
        (done.execution_id, "datascience"),
        (standard.execution_id, ""),
    }


def test_a_variant_the_language_lacks_is_refused_without_a_record(tenant_a):
    req = pb.ExecuteRequest(
        execution_id="node-datascience",
        language=common.LANGUAGE_NODE,
        files=[common.File(path="main.js", content=b"console.log(1)")],
        entry="main.js",
        variant="datascience",
    )
    with pytest.raises(grpc.RpcError) as refused:
        run(tenant_a, req)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_details_pb2.BadRequest()
    rpc_status.from_call(refused.value).details[0].Unpack(detail)
    assert detail.field_violations[0].field == "variant"
    with pytest.raises(grpc.RpcError) as missing:
        tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="node-datascience"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
