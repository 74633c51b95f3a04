"""Runs of artifacts end to end through control's server, a real in-process
spawner and real containers, on SQLite and on PostgreSQL (`control_server`):
pre-staged outputs of an earlier run, stale runs, partial files of failed
runs, named and no inputs, over-bound pre-staging, tenant isolation."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
import sqlalchemy as sa

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import artifacts_pb2 as pb
from sandbox.control.v1 import artifacts_pb2_grpc
from sandbox.control.v1 import control_pb2 as cpb
from services.control.artifacts.service import ArtifactService
from services.control.artifacts.servicer import ArtifactsServicer, add_to_server
from services.control.auth import TenantAuthInterceptor
from services.control.config import ArtifactLimits, PrestageLimits, QuotaLimits
from services.control.db import Database, head_revision
from services.control.executions.store import ExecutionStore
from services.control.runs import store as run_store
from services.control.runs.models import RunRow
from services.control.runs.service import RunService
from services.control.runs.servicer import ArtifactsAndRunsServicer
from tests.integration.control.conftest import TENANT_KEYS, control_channel

PY = common.LANGUAGE_PYTHON
C = grpc.StatusCode
COMPLETED = common.EXECUTION_STATUS_COMPLETED
FAILED = common.EXECUTION_STATUS_FAILED

LIST_OUTPUTS = "import os\nprint(sorted(os.listdir('/workspace/output')))\n"


@pytest.fixture(scope="module")
def arts_a(control_server):
    with control_channel(control_server.port, "tenant-a") as channel:
        yield artifacts_pb2_grpc.ArtifactsStub(channel)


@pytest.fixture(scope="module")
def arts_b(control_server):
    with control_channel(control_server.port, "tenant-b") as channel:
        yield artifacts_pb2_grpc.ArtifactsStub(channel)


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failure:
        call()
    return failure.value


def _artifact(stub, files: dict[str, str], entry: str = "main.py") -> pb.Artifact:
    art = stub.CreateArtifact(pb.CreateArtifactRequest(language=PY, title="runs", entry=entry))
    for path, content in files.items():
        art = stub.CreateFile(
            pb.CreateFileRequest(
                artifact_id=art.artifact_id, expected_revision=art.revision, path=path, content=content.encode()
            )
        ).artifact
    return art


def _run(stub, artifact_id: str, **fields) -> tuple[list[pb.RunEvent], pb.Run]:
    events = list(stub.RunArtifact(pb.RunArtifactRequest(artifact_id=artifact_id, **fields), timeout=90))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "accepted" and kinds[-1] == "finished", kinds
    assert events[0].accepted.execution.status == common.EXECUTION_STATUS_QUEUED
    return events, events[-1].finished


def _stdout(events) -> str:
    return b"".join(e.stdout.data for e in events if e.WhichOneof("event") == "stdout").decode()


def _download(stub, run_id: str, path: str) -> bytes:
    return b"".join(c.data for c in stub.GetRunOutputFile(pb.GetRunOutputFileRequest(run_id=run_id, path=path)))


def test_run_edit_and_run_again_with_the_previous_outputs(control_server, arts_a, tenant_a):
    art = _artifact(
        arts_a,
        {"main.py": "open('/workspace/output/result.txt', 'w').write('first')\nprint('wrote')\n"},
    )
    events, first = _run(arts_a, art.artifact_id)
    assert first.execution.status == COMPLETED, first.execution.error_message
    assert "wrote" in _stdout(events)
    assert (first.revision, first.path, first.inputs_from_run_id, first.prestaged_files) == (2, "main.py", "", 0)
    assert not first.stale
    assert first.execution.execution_id == first.run_id
    assert [f.path for f in first.execution.output_files] == ["result.txt"]
    assert _download(arts_a, first.run_id, "result.txt") == b"first"
    # The run is an execution: Control's own reads work on it too.
    chunks = tenant_a.GetOutputFile(cpb.GetOutputFileRequest(execution_id=first.run_id, path="result.txt"))
    assert b"".join(c.data for c in chunks) == b"first"

    art = arts_a.UpdateFile(
        pb.UpdateFileRequest(
            artifact_id=art.artifact_id,
            expected_revision=art.revision,
            path="main.py",
            content=b"prior = open('/workspace/output/result.txt').read()\n"
            b"print('saw', prior)\n"
            b"open('/workspace/output/second.txt', 'w').write(prior + '+second')\n",
        )
    ).artifact
    events, second = _run(arts_a, art.artifact_id)
    assert second.execution.status == COMPLETED, second.execution.stderr_preview
    assert "saw first" in _stdout(events)
    assert (second.revision, second.inputs_from_run_id, second.prestaged_files) == (3, first.run_id, 1)
    assert second.prestaged_bytes == len(b"first")
    assert _download(arts_a, second.run_id, "second.txt") == b"first+second"

    history = arts_a.ListRuns(pb.ListRunsRequest(artifact_id=art.artifact_id))
    assert [(r.run_id, r.stale) for r in history.runs] == [(second.run_id, False), (first.run_id, True)]
    assert history.next_page_token == ""
    page = arts_a.ListRuns(pb.ListRunsRequest(artifact_id=art.artifact_id, page_size=1))
    assert [r.run_id for r in page.runs] == [second.run_id]
    rest = arts_a.ListRuns(
        pb.ListRunsRequest(artifact_id=art.artifact_id, page_size=1, page_token=page.next_page_token)
    )
    assert [r.run_id for r in rest.runs] == [first.run_id] and rest.next_page_token == ""

    again = arts_a.GetRun(pb.GetRunRequest(run_id=first.run_id))
    assert again.stale and again.revision == 2 and again.execution.status == COMPLETED
    latest = arts_a.GetLatestRuns(pb.GetLatestRunsRequest(artifact_id=art.artifact_id))
    assert [(x.path, x.run.run_id) for x in latest.latest] == [("main.py", second.run_id)]


def test_failed_runs_keep_partial_files_named_and_no_inputs_and_tenants(control_server, arts_a, arts_b, tenant_b):
    art = _artifact(
        arts_a,
        {
            "main.py": "open('/workspace/output/partial.txt', 'w').write('half')\nraise SystemExit(3)\n",
            "check.py": LIST_OUTPUTS,
        },
    )
    _, failed = _run(arts_a, art.artifact_id)
    assert failed.execution.status == FAILED
    assert failed.execution.error_code == common.ERROR_CODE_RUNTIME_ERROR
    assert [f.path for f in failed.execution.output_files] == ["partial.txt"]
    assert _download(arts_a, failed.run_id, "partial.txt") == b"half"

    # A named run (failed runs included) is pre-staged.
    events, named = _run(arts_a, art.artifact_id, path="check.py", run_id=failed.run_id)
    assert named.execution.status == COMPLETED
    assert "['partial.txt']" in _stdout(events)
    assert named.inputs_from_run_id == failed.run_id and named.prestaged_files == 1
    # The run starts with what was pre-staged; its harvest holds it again.
    assert [f.path for f in named.execution.output_files] == ["partial.txt"]

    # `none` starts empty, even though a completed run (`named`) exists now.
    events, empty = _run(arts_a, art.artifact_id, steps=[common.Step(path="check.py")], none=pb.NoPriorRun())
    assert empty.execution.status == COMPLETED
    assert "[]" in _stdout(events)
    assert (empty.inputs_from_run_id, empty.prestaged_files, empty.path) == ("", 0, "")
    assert [s.path for s in empty.steps] == ["check.py"]

    latest = arts_a.GetLatestRuns(pb.GetLatestRunsRequest(artifact_id=art.artifact_id))
    assert [(x.path, x.run.run_id) for x in latest.latest] == [("check.py", empty.run_id), ("main.py", failed.run_id)]
    only = arts_a.GetLatestRuns(pb.GetLatestRunsRequest(artifact_id=art.artifact_id, paths=["main.py", "nope.py"]))
    assert [(x.path, x.run.run_id) for x in only.latest] == [("main.py", failed.run_id)]

    # A run of another artifact, or of another tenant, cannot be named.
    other = _artifact(arts_a, {"main.py": "print(1)\n"})
    assert _error(lambda: _run(arts_a, other.artifact_id, run_id=failed.run_id)).code() == C.NOT_FOUND
    theirs = _artifact(arts_b, {"main.py": "print(1)\n"})
    assert _error(lambda: _run(arts_b, theirs.artifact_id, run_id=failed.run_id)).code() == C.NOT_FOUND

    # Another tenant can neither run, read, list nor fetch files.
    for call in (
        lambda: _run(arts_b, art.artifact_id),
        lambda: arts_b.GetRun(pb.GetRunRequest(run_id=failed.run_id)),
        lambda: arts_b.ListRuns(pb.ListRunsRequest(artifact_id=art.artifact_id)),
        lambda: arts_b.GetLatestRuns(pb.GetLatestRunsRequest(artifact_id=art.artifact_id)),
        lambda: _download(arts_b, failed.run_id, "partial.txt"),
        lambda: list(tenant_b.GetOutputFile(cpb.GetOutputFileRequest(execution_id=failed.run_id, path="partial.txt"))),
    ):
        error = _error(call)
        assert error.code() == C.NOT_FOUND, error
        assert "tenant" not in error.details()
    assert _error(lambda: arts_a.GetRun(pb.GetRunRequest(run_id="run_nope"))).code() == C.NOT_FOUND

    # Refusals leave no run behind.
    assert _error(lambda: _run(arts_a, art.artifact_id, path="missing.py")).code() == C.INVALID_ARGUMENT
    both = lambda: _run(arts_a, art.artifact_id, path="main.py", steps=[common.Step(path="check.py")])  # noqa: E731
    assert _error(both).code() == C.INVALID_ARGUMENT
    # Refused by the spawner itself: the execution and its run record go.
    refused = _error(lambda: _run(arts_a, art.artifact_id, env={"1BAD": "x"}))
    assert refused.code() == C.INVALID_ARGUMENT and "env" in refused.details()
    assert len(arts_a.ListRuns(pb.ListRunsRequest(artifact_id=art.artifact_id)).runs) == 3


def test_a_cancelled_run_keeps_its_partial_files(arts_a, tenant_a):
    art = _artifact(
        arts_a,
        {
            "main.py": "import time\nopen('/workspace/output/early.txt', 'w').write('early')\n"
            "print('ready', flush=True)\ntime.sleep(60)\n"
        },
    )
    stream = arts_a.RunArtifact(pb.RunArtifactRequest(artifact_id=art.artifact_id), timeout=90)
    events = []
    for event in stream:
        events.append(event)
        if event.WhichOneof("event") == "stdout" and b"ready" in event.stdout.data:
            # The run id is the execution id: Control cancels it.
            answer = tenant_a.CancelExecution(cpb.CancelExecutionRequest(execution_id=events[0].accepted.run_id))
            assert answer.cancelled
    finished = events[-1].finished
    assert finished.execution.status == common.EXECUTION_STATUS_CANCELLED
    assert [f.path for f in finished.execution.output_files] == ["early.txt"]
    assert _download(arts_a, finished.run_id, "early.txt") == b"early"


@pytest.fixture(scope="module")
def tight_port(control_server):
    """A second Artifacts server on the same control domain whose pre-staging
    bound is 4 bytes."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        interceptors=[TenantAuthInterceptor({t: k.encode() for t, k in TENANT_KEYS.items()})],
    )
    artifacts = ArtifactService(control_server.database, ArtifactLimits())
    runs = RunService(control_server.executions, control_server.database, PrestageLimits(max_bytes=4))
    add_to_server(server, ArtifactsAndRunsServicer(artifacts, runs))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None).wait()


def test_over_bound_prestaging_is_skipped_with_a_notice(control_server, arts_a, tight_port):
    art = _artifact(
        arts_a,
        {
            "main.py": "import os\nprint(sorted(os.listdir('/workspace/output')))\n"
            "open('/workspace/output/big.txt', 'w').write('0123456789')\n"
        },
    )
    _, first = _run(arts_a, art.artifact_id)
    assert first.execution.status == COMPLETED
    with control_channel(tight_port, "tenant-a") as channel:
        events, second = _run(artifacts_pb2_grpc.ArtifactsStub(channel), art.artifact_id)
    assert second.execution.status == COMPLETED, second.execution.stderr_preview
    assert "[]" in _stdout(events)
    kinds = [e.WhichOneof("event") for e in events]
    notice = events[kinds.index("stderr")].stderr.data.decode()
    assert first.run_id in notice and "not pre-staged" in notice and "10 bytes" in notice
    assert second.execution.stderr_preview.decode().startswith(notice)
    assert (second.prestaged_files, second.inputs_from_run_id) == (0, "")
    assert "10 bytes" in second.prestage_notice
    stored = arts_a.GetRun(pb.GetRunRequest(run_id=second.run_id))
    assert stored.execution.stderr_preview.decode().startswith(notice)


def test_runs_without_a_control_domain_are_unimplemented(database):
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[TenantAuthInterceptor({t: k.encode() for t, k in TENANT_KEYS.items()})],
    )
    add_to_server(server, ArtifactsServicer(ArtifactService(database, ArtifactLimits())))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with control_channel(port, "tenant-a") as channel:
            stub = artifacts_pb2_grpc.ArtifactsStub(channel)
            assert _error(lambda: stub.GetRun(pb.GetRunRequest(run_id="x"))).code() == C.UNIMPLEMENTED
    finally:
        server.stop(None).wait()


# Rows as an older schema holds them, written with SQL: today's code writes
# columns those schemas do not have yet.
OLD_ARTIFACT = sa.text(
    "insert into artifacts (id, tenant, language, title, entry, packages_json, revision, created_at_ms, updated_at_ms)"
    " values (:id, 't', 1, 'x', '', '[]', 1, 1, 1)"
)
OLD_EXECUTION = sa.text(
    "insert into executions (key, tenant, execution_id, session_id, language, status, error_code, error_message,"
    " exit_code, timeout_ms, cpu_debit, debit_day, spawner, usage_json, steps_json, dropped_json, created_at_ms,"
    " started_at_ms, finished_at_ms, heartbeat_at_ms) values (:key, 't', :execution_id, '', 1, 'queued', '', '',"
    " -1, 1000, 1.0, '2026-01-01', '', '{}', '[]', '[]', 1, 0, 0, 1)"
)


def test_upgrade_from_0100_adds_the_run_tables(database_url):
    old = Database(database_url)
    old.migrate("0100")
    with old.engine.begin() as connection:
        connection.execute(OLD_ARTIFACT, {"id": "art_old"})
    old.dispose()
    upgraded = Database(database_url)
    upgraded.migrate()
    assert upgraded.revision() == head_revision()
    tables = set(sa.inspect(upgraded.engine).get_table_names())
    assert {"runs", "run_paths"} <= tables
    assert ArtifactService(upgraded, ArtifactLimits()).get("t", "art_old").revision == 1
    upgraded.dispose()


def _count(db: Database, table: str) -> int:
    with db.engine.connect() as connection:
        return connection.execute(sa.text(f"select count(*) from {table}")).scalar()


def test_upgrade_from_0101_keeps_runs_and_deletes_them_with_their_execution(database_url):
    old = Database(database_url)
    old.migrate("0101")
    with old.engine.begin() as connection:
        connection.execute(OLD_ARTIFACT, {"id": "art_old"})
        for name in ("kept", "refused"):
            connection.execute(OLD_EXECUTION, {"key": f"key-{name}", "execution_id": f"run_{name}"})
    with old.write() as session:
        for name in ("kept", "refused"):
            run = RunRow(
                id=f"run_{name}",
                tenant="t",
                artifact_id="art_old",
                execution_key=f"key-{name}",
                revision=1,
                created_at_ms=1,
            )
            run_store.add_run(session, run, ["main.py"])
    old.dispose()

    upgraded = Database(database_url)
    upgraded.migrate()
    assert upgraded.revision() == head_revision()
    assert (_count(upgraded, "runs"), _count(upgraded, "run_paths")) == (2, 2)
    # The spawner refused one: its run's rows go with the execution.
    assert ExecutionStore(upgraded, lambda tenant: QuotaLimits(10, 1000.0)).discard("key-refused")
    with upgraded.engine.connect() as connection:
        assert connection.execute(sa.text("select id from runs")).scalars().all() == ["run_kept"]
        assert connection.execute(sa.text("select run_id from run_paths")).scalars().all() == ["run_kept"]
    upgraded.dispose()
