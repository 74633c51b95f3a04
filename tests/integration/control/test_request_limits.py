"""Oversized and over-limit requests against a real control and a real
spawner (issue 11, point 5): refused at control's door at once, with the
field named, and nothing recorded; a request at every limit still runs; a
spawner's refusal of a request's content is never retried as if it were
busy."""

from __future__ import annotations

import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import artifacts_pb2 as apb
from sandbox.control.v1 import artifacts_pb2_grpc, control_pb2_grpc
from sandbox.control.v1 import control_pb2 as pb
from services.common.contract.limits import MAX_ARG_BYTES, MAX_STEPS, MIB, RequestLimits
from services.control.server import start as start_control
from tests.integration.control.conftest import control_channel, control_settings
from tests.integration.control.helpers import request, run

pytestmark = pytest.mark.integration

C = grpc.StatusCode
LIMITS = RequestLimits()
# "At once": far below the queue timeout (20 s here, 30 s by default) that a
# retried refusal used to wait out.
PROMPTLY_SECONDS = 5.0
ATTACK_BYTES = 40 * MIB


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failure:
        call()
    return failure.value


def _field_of(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None, error.details()
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail), status
    return detail.field_violations[0].field


def _all_execution_ids(stub) -> set[str]:
    ids, token = set(), ""
    while True:
        page = stub.ListExecutions(pb.ListExecutionsRequest(page_size=500, page_token=token))
        ids.update(e.execution_id for e in page.executions)
        token = page.next_page_token
        if not token:
            return ids


class Ledger:
    """What the tenant's records and quota say, to show a refusal left them alone."""

    def __init__(self, stub):
        self.stub = stub
        self.ids = _all_execution_ids(stub)
        self.quota = stub.GetQuota(pb.GetQuotaRequest())

    def assert_unchanged(self) -> None:
        assert _all_execution_ids(self.stub) == self.ids
        quota = self.stub.GetQuota(pb.GetQuotaRequest())
        assert quota.in_flight == 0
        assert quota.cpu_seconds_used == pytest.approx(self.quota.cpu_seconds_used)


def _files(sizes: list[int], prefix: str = "f") -> list[common.File]:
    return [common.File(path=f"{prefix}{i}.py", content=b"#" * size) for i, size in enumerate(sizes)]


# ---- the attack ----------------------------------------------------------------------------


def test_a_40_mib_request_is_refused_at_once_and_nothing_is_recorded(tenant_a):
    ledger = Ledger(tenant_a)
    attack = request({"main.py": "print(1)"}, execution_id="attack-40mib")
    attack.files.extend(_files([MIB] * (ATTACK_BYTES // MIB)))
    assert attack.ByteSize() > ATTACK_BYTES
    started = time.monotonic()
    error = _error(lambda: run(tenant_a, attack, timeout=60))
    elapsed = time.monotonic() - started
    assert error.code() == C.RESOURCE_EXHAUSTED, error.details()
    assert "larger than max" in error.details()
    assert elapsed < PROMPTLY_SECONDS
    assert _error(lambda: tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="attack-40mib"))).code() == (
        C.NOT_FOUND
    )
    ledger.assert_unchanged()


def test_a_40_mib_artifact_file_is_refused_at_once(control_server):
    with control_channel(control_server.port, "tenant-a") as channel:
        artifacts = artifacts_pb2_grpc.ArtifactsStub(channel)
        art = artifacts.CreateArtifact(apb.CreateArtifactRequest(language=common.LANGUAGE_PYTHON, title="big"))
        write = apb.CreateFileRequest(
            artifact_id=art.artifact_id, expected_revision=art.revision, path="big.bin", content=b"x" * ATTACK_BYTES
        )
        started = time.monotonic()
        error = _error(lambda: artifacts.CreateFile(write, timeout=60))
        assert error.code() == C.RESOURCE_EXHAUSTED and time.monotonic() - started < PROMPTLY_SECONDS
        # Just over the file cap, under the message limit: the field is named.
        write.content = b"x" * (LIMITS.max_file_bytes + 1)
        error = _error(lambda: artifacts.CreateFile(write))
        assert error.code() == C.INVALID_ARGUMENT and _field_of(error) == "content"
        assert artifacts.ListFiles(apb.ListFilesRequest(artifact_id=art.artifact_id)).files == []


# ---- one step over each limit ---------------------------------------------------------------


def _over(**fields):
    def make(execution_id: str) -> pb.ExecuteRequest:
        req = request({"main.py": "print(1)"}, execution_id=execution_id)
        for name, value in fields.items():
            if name == "files":
                req.ClearField("files")
                req.files.extend(value)
                req.entry = value[0].path
            elif name == "steps":
                req.ClearField("entry")
                req.steps.extend(value)
            elif name == "env":
                req.env.update(value)
            elif name == "limits":
                req.limits.CopyFrom(value)
            elif isinstance(value, list):
                getattr(req, name).extend(value)
            else:
                setattr(req, name, value)
        return req

    return make


_NAME_BYTES = 100
OVER_ONE_LIMIT = [
    ("files", _over(files=_files([1] * (LIMITS.max_files + 1))), "files"),
    ("file-bytes", _over(files=_files([LIMITS.max_file_bytes + 1])), "files[0].content"),
    (
        "total-file-bytes",
        _over(files=_files([LIMITS.max_file_bytes] * (LIMITS.max_total_file_bytes // LIMITS.max_file_bytes) + [1])),
        "files",
    ),
    (
        "path-length",
        _over(files=[common.File(path="p/" * (LIMITS.max_path_length // 2 - 1) + "x.py")]),
        "files[0].path",
    ),
    ("path-collision", _over(files=[common.File(path="main.py"), common.File(path="Main.py")]), "files"),
    ("stdin", _over(stdin=b"x" * (LIMITS.max_stdin_bytes + 1)), "stdin"),
    ("args", _over(args=["a"] * (LIMITS.max_args + 1)), "args"),
    ("arg-bytes", _over(args=["a" * (MAX_ARG_BYTES + 1)]), "args[0]"),
    ("steps", _over(steps=[common.Step(path="main.py")] * (MAX_STEPS + 1)), "steps"),
    ("env", _over(env={f"V{i}": "" for i in range(LIMITS.max_env + 1)}), "env"),
    (
        "env-bytes",
        _over(
            env={f"V{i:03d}".ljust(_NAME_BYTES, "N"): "v" * (LIMITS.max_env_bytes // 2 - _NAME_BYTES) for i in range(2)}
            | {"X": "y"}
        ),
        "env",
    ),
    ("env-reserved", _over(env={"HTTPS_PROXY": "http://attacker"}), 'env["HTTPS_PROXY"]'),
    ("packages", _over(packages=[common.Package(name=f"p{i}") for i in range(LIMITS.max_packages + 1)]), "packages"),
    (
        "package-twice",
        _over(packages=[common.Package(name="Foo_Bar"), common.Package(name="foo.bar")]),
        "packages[1].name",
    ),
    ("package-name", _over(packages=[common.Package(name="--index-url=http://attacker")]), "packages[0].name"),
    ("timeout", _over(limits=common.Limits(timeout_ms=60_001)), "limits.timeout_ms"),
    ("group-id", _over(group_id="not an id"), "group_id"),
    ("language", _over(language=common.LANGUAGE_UNSPECIFIED), "language"),
]


@pytest.mark.parametrize(("name", "make", "field"), OVER_ONE_LIMIT, ids=[name for name, _, _ in OVER_ONE_LIMIT])
def test_one_step_over_a_limit_is_refused_naming_the_field(tenant_a, name, make, field):
    ledger = Ledger(tenant_a)
    execution_id = f"over-{name}"
    started = time.monotonic()
    error = _error(lambda: run(tenant_a, make(execution_id)))
    assert time.monotonic() - started < PROMPTLY_SECONDS
    assert error.code() == C.INVALID_ARGUMENT, error.details()
    assert _field_of(error) == field
    assert error.details().startswith(field)
    code = _error(lambda: tenant_a.GetExecution(pb.GetExecutionRequest(execution_id=execution_id))).code()
    assert code == C.NOT_FOUND
    ledger.assert_unchanged()


def test_a_run_over_a_limit_leaves_no_run(control_server, tenant_a):
    with control_channel(control_server.port, "tenant-a") as channel:
        artifacts = artifacts_pb2_grpc.ArtifactsStub(channel)
        art = artifacts.CreateArtifact(
            apb.CreateArtifactRequest(language=common.LANGUAGE_PYTHON, title="door", entry="main.py")
        )
        artifacts.CreateFile(
            apb.CreateFileRequest(
                artifact_id=art.artifact_id, expected_revision=art.revision, path="main.py", content=b"print(1)"
            )
        )
        ledger = Ledger(tenant_a)
        for fields, field in (
            (dict(stdin=b"x" * (LIMITS.max_stdin_bytes + 1)), "stdin"),
            (dict(env={"LD_PRELOAD": "/tmp/x.so"}), 'env["LD_PRELOAD"]'),
            (dict(args=["a"] * (LIMITS.max_args + 1)), "args"),
        ):
            call = artifacts.RunArtifact(apb.RunArtifactRequest(artifact_id=art.artifact_id, **fields), timeout=60)
            error = _error(lambda call=call: list(call))
            assert error.code() == C.INVALID_ARGUMENT and _field_of(error) == field
        assert artifacts.ListRuns(apb.ListRunsRequest(artifact_id=art.artifact_id)).runs == []
        ledger.assert_unchanged()


# ---- at the limits ----------------------------------------------------------------------------

AT_LIMITS_PROGRAM = """
import os, sys
data = sys.stdin.buffer.read()
files = [os.path.join(d, f) for d, _, fs in os.walk('.') for f in fs]
total = sum(os.path.getsize(f) for f in files)
env = sum(1 for k in os.environ if k.startswith('LIMIT_'))
print(len(files), total, len(data), len(sys.argv) - 1, max(map(len, sys.argv[1:])), env)
"""


def _at_the_limits() -> pb.ExecuteRequest:
    """Every size and count at its limit at once: files, their bytes and
    total, the longest path, stdin, arguments, environment."""
    req = request({"main.py": AT_LIMITS_PROGRAM}, execution_id="at-the-limits")
    rest = LIMITS.max_total_file_bytes - len(AT_LIMITS_PROGRAM) - LIMITS.max_file_bytes
    others = LIMITS.max_files - 2
    sizes = [rest // others] * others
    sizes[-1] += rest - sum(sizes)
    longest = ("d" * 200 + "/").ljust(LIMITS.max_path_length - 3, "p") + ".py"
    req.files.append(common.File(path=longest, content=b"#" * LIMITS.max_file_bytes))
    req.files.extend(_files(sizes))
    req.stdin = b"i" * LIMITS.max_stdin_bytes
    req.args.extend(["a" * MAX_ARG_BYTES] * LIMITS.max_args)
    per_variable = LIMITS.max_env_bytes // LIMITS.max_env
    names = [f"LIMIT_{i:03d}" for i in range(LIMITS.max_env)]
    req.env.update({name: "v" * (per_variable - len(name)) for name in names})
    return req


def test_a_request_at_every_limit_still_runs(tenant_a):
    req = _at_the_limits()
    assert len(req.files) == LIMITS.max_files
    assert sum(len(f.content) for f in req.files) == LIMITS.max_total_file_bytes
    stream = run(tenant_a, req, timeout=120)
    assert stream.finished.status == common.EXECUTION_STATUS_COMPLETED, stream.finished.error_message
    counts = [int(n) for n in stream.stdout.split()]
    assert counts == [
        LIMITS.max_files,
        LIMITS.max_total_file_bytes,
        LIMITS.max_stdin_bytes,
        LIMITS.max_args,
        MAX_ARG_BYTES,
        LIMITS.max_env,
    ]


def test_every_step_at_once_still_runs(tenant_a):
    req = request({"main.py": "import sys\nprint(len(sys.argv) - 1)\n"}, execution_id="all-the-steps")
    req.ClearField("entry")
    req.steps.extend(common.Step(path="main.py", args=["a"] * LIMITS.max_args) for _ in range(MAX_STEPS))
    stream = run(tenant_a, req, timeout=120)
    assert stream.finished.status == common.EXECUTION_STATUS_COMPLETED, stream.finished.error_message
    assert stream.stdout.split() == [str(LIMITS.max_args).encode()] * MAX_STEPS


# ---- what only a spawner can refuse -----------------------------------------------------------


def test_a_spawner_refusal_of_the_content_ends_at_once(tenant_a):
    """Memory is the spawner's own range: control cannot judge it, and the
    spawner's INVALID_ARGUMENT is final, not a busy spawner."""
    ledger = Ledger(tenant_a)
    req = request({"main.py": "print(1)"}, execution_id="memory-too-small")
    req.limits.memory_bytes = 1
    started = time.monotonic()
    stream = run(tenant_a, req)
    assert time.monotonic() - started < PROMPTLY_SECONDS
    done = stream.finished
    assert (done.status, done.error_code) == (common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_INPUT_REJECTED)
    assert "limits.memory_bytes" in done.error_message and done.started_at_ms == 0
    quota = tenant_a.GetQuota(pb.GetQuotaRequest())
    assert quota.in_flight == 0
    assert quota.cpu_seconds_used == pytest.approx(ledger.quota.cpu_seconds_used)


def test_a_spawner_refusal_for_size_is_not_retried(control_spawner, tmp_path):
    """A mesh whose control was given larger limits than its spawner: the
    spawner's RESOURCE_EXHAUSTED for the message size is final, unlike its
    "every slot is busy", so the execution fails at once instead of waiting
    out the queue timeout."""
    generous = RequestLimits(max_file_bytes=40 * MIB, max_total_file_bytes=40 * MIB)
    settings = control_settings(
        control_spawner.port, tmp_path, f"sqlite:///{tmp_path}/control.db", limits=generous, queue_timeout_seconds=20
    )
    control = start_control(settings)
    try:
        with control_channel(control.port, "tenant-a") as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            req = request({"main.py": "print(1)"}, execution_id="too-big-for-the-spawner")
            req.files.append(common.File(path="big.bin", content=b"x" * 30 * MIB))
            started = time.monotonic()
            stream = run(stub, req)
            assert time.monotonic() - started < PROMPTLY_SECONDS
            done = stream.finished
            assert (done.status, done.error_code) == (common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_INPUT_REJECTED)
            assert "RESOURCE_EXHAUSTED" in done.error_message
            assert stub.GetQuota(pb.GetQuotaRequest()).cpu_seconds_used == 0
    finally:
        control.stop(grace_seconds=5)
