"""Control gives each execution a sandbox runtime: what it asked for, else
the default, and gVisor whatever it asked for when its tenant is marked
untrusted; records it; refuses one the mesh does not offer
(FAILED_PRECONDITION) or does not know (INVALID_ARGUMENT), with no record.

Which kernel served the program is read from inside: gVisor's own kernel
reports release 4.4.0, the host's does not."""

from __future__ import annotations

import platform
import secrets

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from sandbox.spawner.v1 import spawner_pb2 as spb
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.control.server import start as start_control
from services.spawner.server import start as start_spawner
from tests.integration.conftest import SECRET, assert_nothing_left, make_settings
from tests.integration.control.conftest import control_channel, control_settings
from tests.integration.control.helpers import request, run

pytestmark = pytest.mark.integration

GVISOR_RELEASE = "4.4.0"  # what gVisor's kernel answers to uname(2)
KERNEL = {"main.py": "import platform\nprint(platform.release())"}


def kernel_of(stream) -> str:
    assert stream.finished.status == common.EXECUTION_STATUS_COMPLETED, stream.finished
    return stream.stdout.decode().strip()


def test_the_host_is_not_gvisor():
    # The test below tells the kernels apart by this release.
    assert platform.release() != GVISOR_RELEASE


def test_the_runtime_reaches_the_spawner_and_is_recorded(tenant_a):
    on_gvisor = run(tenant_a, request(KERNEL, group_id="s-runtime", runtime="gvisor"))
    assert kernel_of(on_gvisor) == GVISOR_RELEASE
    assert on_gvisor.finished.runtime == "gvisor"
    on_runc = run(tenant_a, request(KERNEL, group_id="s-runtime", runtime="runc"))
    assert kernel_of(on_runc) == platform.release()
    default = run(tenant_a, request(KERNEL, group_id="s-runtime"))
    assert kernel_of(default) == platform.release()
    assert default.finished.runtime == "runc"  # the spawner's default, named
    listed = tenant_a.ListExecutions(pb.ListExecutionsRequest(group_id="s-runtime")).executions
    assert sorted(e.runtime for e in listed) == ["gvisor", "runc", "runc"]


def test_an_unknown_runtime_is_refused_at_the_door(tenant_a):
    with pytest.raises(grpc.RpcError) as refused:
        run(tenant_a, request(KERNEL, execution_id="kata-please", runtime="kata"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_details_pb2.BadRequest()
    rpc_status.from_call(refused.value).details[0].Unpack(detail)
    assert detail.field_violations[0].field == "runtime"
    with pytest.raises(grpc.RpcError) as missing:
        tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="kata-please"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def runc_only_spawner(docker_api, tmp_path_factory):
    """A spawner whose engine runtime for gVisor does not exist: it offers runc only."""
    name = f"runc-{secrets.token_hex(4)}"
    root = tmp_path_factory.mktemp("runc-only-workspaces")
    running = start_spawner(make_settings(name, root, capacity=2, gvisor_runtime="sandbox-mesh-test-no-such-runtime"))
    yield running
    running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


@pytest.fixture
def strict_control(control_spawner, tmp_path):
    """Control with tenant-b marked untrusted."""
    running = start_control(control_settings(control_spawner.port, tmp_path, "", untrusted_tenants=("tenant-b",)))
    yield running
    running.stop(grace_seconds=5)


def test_an_untrusted_tenant_always_runs_on_gvisor(strict_control):
    with (
        control_channel(strict_control.port, "tenant-b") as channel,
        control_channel(strict_control.port, "tenant-a") as other,
    ):
        untrusted = control_pb2_grpc.ControlStub(channel)
        for asked in ("runc", ""):
            stream = run(untrusted, request(KERNEL, runtime=asked))
            assert kernel_of(stream) == GVISOR_RELEASE, asked
            assert stream.finished.runtime == "gvisor"
        trusted = run(control_pb2_grpc.ControlStub(other), request(KERNEL, runtime="runc"))
        assert kernel_of(trusted) == platform.release()


def test_a_runtime_no_spawner_offers_is_refused_with_no_record(runc_only_spawner, tmp_path):
    running = start_control(control_settings(runc_only_spawner.port, tmp_path, "", untrusted_tenants=("tenant-b",)))
    try:
        with control_channel(running.port, "tenant-a") as a, control_channel(running.port, "tenant-b") as b:
            for stub, execution_id, asked in (
                (control_pb2_grpc.ControlStub(a), "wants-gvisor", "gvisor"),
                (control_pb2_grpc.ControlStub(b), "untrusted-on-runc-only", "runc"),
            ):
                with pytest.raises(grpc.RpcError) as refused:
                    run(stub, request(KERNEL, execution_id=execution_id, runtime=asked))
                assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert "runtime" in refused.value.details()
                detail = error_details_pb2.PreconditionFailure()
                rpc_status.from_call(refused.value).details[0].Unpack(detail)
                assert detail.violations[0].subject == "runtime"
                with pytest.raises(grpc.RpcError) as missing:
                    stub.GetExecution(pb.GetExecutionRequest(execution_id=execution_id))
                assert missing.value.code() == grpc.StatusCode.NOT_FOUND
                assert stub.GetQuota(pb.GetQuotaRequest()).in_flight == 0
            fine = run(control_pb2_grpc.ControlStub(a), request(KERNEL))
            assert kernel_of(fine) == platform.release()
    finally:
        running.stop(grace_seconds=5)


def test_a_spawner_lists_its_runtimes_and_refuses_one_it_lacks(runc_only_spawner, control_spawner):
    for running, offered in ((runc_only_spawner, ["runc"]), (control_spawner, ["runc", "gvisor"])):
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as raw:
            stub = spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(raw, ClientAuthInterceptor(SECRET.encode())))
            info = stub.Info(spb.InfoRequest())
            assert list(info.sandbox_runtimes) == offered
            assert info.default_runtime == "runc"
    with grpc.insecure_channel(f"127.0.0.1:{runc_only_spawner.port}") as raw:
        stub = spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(raw, ClientAuthInterceptor(SECRET.encode())))
        spawner_request = spb.ExecuteRequest(
            execution_id="direct-gvisor",
            tenant="tenant-a",
            language=common.LANGUAGE_PYTHON,
            files=[common.File(path="main.py", content=b"print(1)")],
            entry="main.py",
            runtime="gvisor",
        )
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.Execute(spawner_request))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "runtime" in refused.value.details()
    assert runc_only_spawner.spawner.inflight.free_slots == runc_only_spawner.spawner.settings.capacity
