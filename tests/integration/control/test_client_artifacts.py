"""Client.artifacts (typed artifacts, files and runs) and AsyncClient's
reads, against a real control and spawner."""

from __future__ import annotations

import asyncio

import pytest

from sandbox_mesh import Artifact, ArtifactFile, AsyncClient, Client, MeshError, Output, Run, RunResult
from tests.integration.control.conftest import TENANT_KEYS

pytestmark = pytest.mark.integration


@pytest.fixture
def client(control_server):
    with Client(f"127.0.0.1:{control_server.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as client:
        yield client


def test_artifact_files_and_packages_typed(client):
    artifact = client.artifacts.create("python", title="typed", entry="main.py", pip=["requests==2.32.3"])
    assert isinstance(artifact, Artifact) and artifact.revision == 1 and artifact.language == "python"
    assert [p.spec("python") for p in artifact.packages] == ["requests==2.32.3"]
    after, stored = client.artifacts.put(artifact.artifact_id, "main.py", "print('v1')")
    assert after.revision == 2 and isinstance(stored, ArtifactFile) and stored.modified_revision == 2
    after, stored = client.artifacts.put(artifact.artifact_id, "main.py", b"print('v2')", revision=2)
    assert after.revision == 3 and stored.size == len(b"print('v2')")
    with pytest.raises(MeshError) as stale:
        client.artifacts.put(artifact.artifact_id, "main.py", "x", revision=2)
    assert stale.value.code == "ABORTED"
    content, metadata = client.artifacts.read(artifact.artifact_id, "main.py")
    assert content == b"print('v2')" and metadata.path == "main.py"
    client.artifacts.put(artifact.artifact_id, "old.py", "")
    assert client.artifacts.rename(artifact.artifact_id, "old.py", "new.py").revision == 5
    listing = client.artifacts.files(artifact.artifact_id)
    assert [f.path for f in listing.files] == ["main.py", "new.py"] and listing.revision == 5
    assert client.artifacts.remove(artifact.artifact_id, "new.py").revision == 6
    updated = client.artifacts.add_packages(artifact.artifact_id, pip=["requests==2.31.0", "idna"])
    assert [p.spec("python") for p in updated.packages] == ["requests==2.31.0", "idna"]
    assert client.artifacts.update(artifact.artifact_id, title="renamed").title == "renamed"
    assert artifact.artifact_id in [a.artifact_id for a in client.artifacts.list(limit=500)]
    assert client.artifacts.get(artifact.artifact_id).revision == 8


def test_runs_typed_with_output_files_and_listing(client):
    artifact = client.artifacts.create("node", entry="index.js")
    client.artifacts.put(
        artifact.artifact_id,
        "index.js",
        "require('fs').writeFileSync('/workspace/output/out.txt', process.argv.slice(2).join(','));"
        "console.log('node says hi')",
    )
    result = client.artifacts.run(artifact.artifact_id, args=["a", "b"], timeout=30)
    assert isinstance(result, RunResult) and result.ok and result.stdout == b"node says hi\n"
    assert result.files == {"out.txt": b"a,b"} and result.run.revision == 2
    stream = client.artifacts.execute(artifact.artifact_id, steps=[["index.js", "x"]], inputs="none")
    events = list(stream)
    assert b"".join(e.data for e in events if isinstance(e, Output)) == b"node says hi\n"
    assert stream.run is not None and stream.run.steps == (("index.js", "x"),) and stream.result is not None
    runs = list(client.artifacts.runs(artifact.artifact_id))
    assert [r.run_id for r in runs] == [stream.run.run_id, result.run_id]
    fetched = client.artifacts.get_run(result.run_id)
    assert isinstance(fetched, Run) and fetched.execution.status == "COMPLETED" and fetched.path == "index.js"
    assert client.artifacts.output_file(result.run_id, "out.txt") == b"a,b"
    # a run is an execution
    assert client.get(result.run_id).status == "COMPLETED" and client.logs(result.run_id).stdout == b"node says hi\n"


def test_async_reads(control_server, client):
    done = client.run({"main.py": "print('async')"}, group_id="async-s")

    async def reads():
        async with AsyncClient(f"127.0.0.1:{control_server.port}", "tenant-a", TENANT_KEYS["tenant-a"]) as aio:
            execution = await aio.get_execution(done.execution_id)
            listed = await aio.list_executions(group_id="async-s", limit=5)
            logs = await aio.logs(done.execution_id)
            quota = await aio.quota()
            cancelled, _ = await aio.cancel(done.execution_id)
            with pytest.raises(MeshError) as missing:
                await aio.get_execution("no-such-execution")
            return execution, listed, logs, quota, cancelled, missing.value

    execution, listed, logs, quota, cancelled, missing = asyncio.run(reads())
    assert execution.status == "COMPLETED" and [e.execution_id for e in listed] == [done.execution_id]
    assert logs.stdout == b"async\n" and quota.tenant == "tenant-a" and cancelled is False
    assert missing.code == "NOT_FOUND"
