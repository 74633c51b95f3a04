"""Every refused request gets INVALID_ARGUMENT naming the field, and nothing
is started or written (checked against the real engine and workspace root)."""

from __future__ import annotations

import pathlib

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from tests.integration.conftest import labelled_containers
from tests.integration.helpers import collect, request

pytestmark = pytest.mark.integration


def _add_file(path, content=b"x"):
    return lambda r: r.files.add(path=path, content=content)


def _set(**fields):
    def apply(r):
        for name, value in fields.items():
            setattr(r, name, value)

    return apply


def _limits(**fields):
    def apply(r):
        for name, value in fields.items():
            setattr(r.limits, name, value)

    return apply


CASES = [
    ("absolute-path", _add_file("/etc/passwd"), "files[1].path"),
    ("dot-dot", _add_file("a/../../x.py"), "files[1].path"),
    ("nul", _add_file("a\x00b.py"), "files[1].path"),
    ("control-char", _add_file("a\x1bb.py"), "files[1].path"),
    ("bidi", _add_file("evil\u202egnp.py"), "files[1].path"),
    ("hidden-segment", _add_file(".git/config"), "files[1].path"),
    ("backslash", _add_file("a\\b.py"), "files[1].path"),
    ("case-collision", _add_file("MAIN.py"), "files"),
    ("too-many-files", lambda r: [r.files.add(path=f"f{i}.py") for i in range(100)], "files"),
    ("file-too-big", _add_file("big.bin", b"x" * (1024 * 1024 + 1)), "files[1].content"),
    (
        "total-too-big",
        lambda r: [r.files.add(path=f"b{i}.bin", content=b"x" * 1024 * 1024) for i in range(10)],
        "files",
    ),
    ("bad-execution-id", _set(execution_id="no spaces allowed"), "execution_id"),
    ("long-execution-id", _set(execution_id="x" * 65), "execution_id"),
    ("bad-tenant", _set(tenant="../other"), "tenant"),
    ("unknown-language", _set(language=common.LANGUAGE_UNSPECIFIED), "language"),
    ("missing-entry", _set(entry="nope.py"), "entry"),
    ("step-names-missing-file", lambda r: (r.ClearField("entry"), r.steps.add(path="missing.py")), "steps[0].path"),
    ("timeout-too-long", _limits(timeout_ms=10**9), "limits.timeout_ms"),
    ("timeout-too-short", _limits(timeout_ms=1), "limits.timeout_ms"),
    ("memory-too-small", _limits(memory_bytes=1024), "limits.memory_bytes"),
    ("memory-too-large", _limits(memory_bytes=1 << 40), "limits.memory_bytes"),
    ("cpus-too-many", _limits(cpus=64), "limits.cpus"),
    ("reserved-env", lambda r: r.env.update({"HTTPS_PROXY": "http://x"}), 'env["HTTPS_PROXY"]'),
]


@pytest.mark.parametrize("mutate, field", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_request_names_the_field(stub, docker_api, spawner_name, workspace_root, spawner_server, mutate, field):
    assert spawner_server.spawner.provisioner.wait_removed(10)  # what earlier tests ran is gone
    req = request({"main.py": "print('must not run')"})
    mutate(req)
    with pytest.raises(grpc.RpcError) as refused:
        collect(stub.Execute(req, timeout=30))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(field + ":"), refused.value.details()
    status = rpc_status.from_call(refused.value)
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == field
    assert labelled_containers(docker_api, spawner_name) == []
    assert list(pathlib.Path(workspace_root).iterdir()) == []


def test_packages_without_an_egress_fail_precondition(stub, docker_api, spawner_name, workspace_root, spawner_server):
    assert spawner_server.spawner.provisioner.wait_removed(10)  # what earlier tests ran is gone
    req = request({"main.py": "print(1)"})
    req.packages.add(name="six")
    with pytest.raises(grpc.RpcError) as refused:
        collect(stub.Execute(req, timeout=30))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details().startswith("packages:")
    assert labelled_containers(docker_api, spawner_name) == []
    assert list(pathlib.Path(workspace_root).iterdir()) == []


def test_bad_package_name_is_invalid(stub):
    req = request({"main.py": "print(1)"})
    req.packages.add(name="--index-url=http://decoy.invalid/simple")
    with pytest.raises(grpc.RpcError) as refused:
        collect(stub.Execute(req, timeout=30))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("packages[0].name:")
