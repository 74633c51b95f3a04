"""/workspace/output/ is harvested after every kind of exit, within caps."""

from __future__ import annotations

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb
from tests.integration.helpers import collect, execute, request

pytestmark = pytest.mark.integration

WRITE_THEN = """
import os, sys, time
os.makedirs('/workspace/output/sub', exist_ok=True)
open('/workspace/output/result.txt', 'w').write('partial')
open('/workspace/output/sub/data.bin', 'wb').write(bytes(range(256)))
print('written', flush=True)
{then}
"""


def files_of(outcome) -> dict[str, bytes]:
    chunks: dict[str, bytearray] = {}
    for event in outcome.events:
        if event.WhichOneof("event") == "output_file":
            f = event.output_file
            buffer = chunks.setdefault(f.path, bytearray())
            assert f.offset == len(buffer)
            buffer += f.content
    return {path: bytes(data) for path, data in chunks.items()}


@pytest.mark.parametrize(
    "then, status, code, timeout_ms",
    [
        ("", common.EXECUTION_STATUS_COMPLETED, common.ERROR_CODE_UNSPECIFIED, 0),
        ("sys.exit(2)", common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_RUNTIME_ERROR, 0),
        ("time.sleep(60)", common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_TIMEOUT, 1500),
    ],
    ids=["completed", "failed", "timed-out"],
)
def test_outputs_are_harvested_after_every_exit(stub, then, status, code, timeout_ms):
    outcome = execute(stub, request({"main.py": WRITE_THEN.format(then=then)}, timeout_ms=timeout_ms))
    assert (outcome.result.status, outcome.result.error_code) == (status, code), outcome.result
    assert files_of(outcome) == {"result.txt": b"partial", "sub/data.bin": bytes(range(256))}
    assert [(f.path, f.size) for f in outcome.result.output_files] == [("result.txt", 7), ("sub/data.bin", 256)]
    assert outcome.result.usage.output_files == 2


def test_outputs_are_harvested_after_cancel(stub):
    req = request({"main.py": WRITE_THEN.format(then="time.sleep(60)")})
    call = stub.Execute(req, timeout=60)
    for event in call:
        if event.WhichOneof("event") == "stdout":
            break
    stub.Cancel(pb.CancelRequest(execution_id=req.execution_id, tenant=req.tenant))
    outcome = collect(call)
    assert outcome.result.status == common.EXECUTION_STATUS_CANCELLED
    assert files_of(outcome) == {"result.txt": b"partial", "sub/data.bin": bytes(range(256))}


def test_prior_outputs_are_prestaged(stub):
    code = (
        "print(open('/workspace/output/previous/state.json').read())\nopen('/workspace/output/next.txt','w').write('2')"
    )
    req = request({"main.py": code}, prior_outputs=[common.File(path="previous/state.json", content=b'{"n": 1}')])
    outcome = execute(stub, req)
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.stderr
    assert outcome.stdout == b'{"n": 1}\n'
    assert files_of(outcome) == {"next.txt": b"2", "previous/state.json": b'{"n": 1}'}


def test_large_output_file_is_streamed_in_chunks(stub):
    code = "open('/workspace/output/big.bin','wb').write(b'z' * (3 * 1024 * 1024 + 5))"
    outcome = execute(stub, request({"main.py": code}))
    chunks = [e.output_file for e in outcome.events if e.WhichOneof("event") == "output_file"]
    assert len(chunks) == 4
    assert chunks[-1].last_chunk and not chunks[0].last_chunk
    assert files_of(outcome)["big.bin"] == b"z" * (3 * 1024 * 1024 + 5)


def test_hostile_outputs_are_dropped_not_followed(stub):
    code = r"""
import os
os.symlink('/etc/passwd', '/workspace/output/passwd')
os.symlink('/', '/workspace/output/root')
os.mkfifo('/workspace/output/fifo')
open('/workspace/output/.hidden', 'w').write('h')
open('/workspace/output/ok.txt', 'w').write('ok')
"""
    outcome = execute(stub, request({"main.py": code}))
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.stderr
    assert files_of(outcome) == {"ok.txt": b"ok"}
    dropped = " ".join(outcome.result.dropped_output_files)
    for name in ("passwd (symlink)", "root (symlink)", ".hidden"):
        assert name in dropped
    # gVisor keeps a FIFO made in a bind-mounted folder inside its own
    # kernel: the host's workspace never has it, so nothing is dropped for it.
    fifo_reached_the_host = "fifo (not a regular file)" in dropped
    assert outcome.result.usage.output_files_dropped == (4 if fifo_reached_the_host else 3)


def test_files_over_caps_are_dropped_named_and_output_limit(stub, spawner_server):
    per_file = spawner_server.spawner.settings.max_output_file_bytes
    code = (
        f"open('/workspace/output/huge.bin','wb').write(b'x' * {per_file + 1})\n"
        "open('/workspace/output/small.txt','w').write('s')"
    )
    outcome = execute(stub, request({"main.py": code}))
    assert outcome.result.error_code == common.ERROR_CODE_OUTPUT_LIMIT
    assert files_of(outcome) == {"small.txt": b"s"}
    assert any(d.startswith("huge.bin (over the per-file cap") for d in outcome.result.dropped_output_files)


def test_disk_flood_is_stopped(stub, spawner_server):
    """Many files each under RLIMIT_FSIZE still cannot fill the host's disk."""
    cap = spawner_server.spawner.settings.max_workspace_bytes
    code = (
        "import os\nblock = b'x' * (16 * 1024 * 1024)\n"
        f"for i in range({cap // (16 * 1024 * 1024) * 4}):\n"
        "    with open(f'/workspace/output/fill{i}.bin', 'wb') as f:\n        f.write(block)\n"
    )
    outcome = execute(stub, request({"main.py": code}, timeout_ms=60_000))
    assert outcome.result.error_code == common.ERROR_CODE_OUTPUT_LIMIT, outcome.result
    assert "the workspace ran out of space" in outcome.result.error_message
    assert b"No space left on device" in outcome.stderr
