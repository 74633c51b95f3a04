"""Files of an open session through control, on the real engine: files at
creation visible to the first call, put then a call reads it, a call writes
then get returns it (chunks, sha256), list, bad paths and sizes naming the
field, another tenant's session NOT_FOUND, an ended one FAILED_PRECONDITION,
and a creation whose packages cannot install leaving no record and nothing
running (docs/sessions.md). The hostile workspace is tests/integration/
test_session_files_spawner.py's; packages that do install are tests/
integration/egress/test_session_packages.py's."""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.common.v1 import session_pb2 as cells
from sandbox.control.v1 import control_pb2 as pb
from tests.integration.control.test_sessions import assert_session_gone, call, last_value, open_session

PYTHON = common.LANGUAGE_PYTHON


def get(stub, session_id: str, path: str) -> tuple[bytes, list[pb.OutputFileChunk]]:
    chunks = list(stub.GetSessionFile(pb.GetSessionFileRequest(session_id=session_id, path=path), timeout=60))
    return b"".join(c.data for c in chunks), chunks


def put(stub, session_id: str, path: str, content: bytes) -> pb.SessionFile:
    return stub.PutSessionFile(pb.PutSessionFileRequest(session_id=session_id, path=path, content=content), timeout=60)


def refused(attempt) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        attempt()
    return error.value


def test_files_of_a_session_through_control(tenant_a, control_spawner):
    files = [common.File(path="data.csv", content=b"x,y\n1,2\n")]
    open_session(tenant_a, session_id="files", files=files)
    try:
        _, result = call(tenant_a, "files", "open('data.csv').read()")
        assert result.status == cells.CELL_STATUS_OK, result
        assert last_value(result) == b"'x,y\\n1,2\\n'"
        written = put(tenant_a, "files", "in/note.txt", b"from the caller")
        assert (written.path, written.size) == ("in/note.txt", 15)
        _, result = call(tenant_a, "files", "open('in/note.txt').read()")
        assert last_value(result) == b"'from the caller'"
        _, result = call(tenant_a, "files", "import os\nopen('out.bin', 'wb').write(os.urandom(2 * 1024 * 1024 + 3))")
        assert result.status == cells.CELL_STATUS_OK, result
        _, result = call(tenant_a, "files", "import hashlib\nhashlib.sha256(open('out.bin', 'rb').read()).hexdigest()")
        data, chunks = get(tenant_a, "files", "out.bin")
        assert len(data) == 2 * 1024 * 1024 + 3 and len(chunks) >= 3
        digest = hashlib.sha256(data).hexdigest()
        assert last_value(result) == f"'{digest}'".encode()
        # The last chunk carries the sha256 of the whole file; sizes on each.
        assert chunks[-1].sha256 == digest and all(not c.sha256 for c in chunks[:-1])
        assert {c.size for c in chunks} == {len(data)}
        found = tenant_a.ListSessionFiles(pb.ListSessionFilesRequest(session_id="files", directory=""))
        assert [(f.path, f.size) for f in found.files] == [
            ("data.csv", 8),
            ("in/note.txt", 15),
            ("out.bin", len(data)),
        ]
        assert not found.truncated
        # Outside the working directory, a file is named from the workspace's root.
        _, result = call(tenant_a, "files", "open('/workspace/output/chart.txt', 'w').write('drawn')")
        assert result.status == cells.CELL_STATUS_OK, result
        assert get(tenant_a, "files", "/workspace/output/chart.txt")[0] == b"drawn"
        assert get(tenant_a, "files", "/workspace/code/data.csv")[0] == b"x,y\n1,2\n"
        whole = tenant_a.ListSessionFiles(pb.ListSessionFilesRequest(session_id="files", directory="/workspace"))
        assert ("/workspace/output/chart.txt", 5) in [(f.path, f.size) for f in whole.files]
        assert ("data.csv", 8) in [(f.path, f.size) for f in whole.files]
        # Bad requests name the field; what is not there is NOT_FOUND.
        for path in ("../x", "/etc/passwd", "../../etc/passwd", "", "/workspace/../etc/passwd", "/workspacex/y"):
            error = refused(lambda p=path: get(tenant_a, "files", p))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("path:"), path
        error = refused(lambda: put(tenant_a, "files", "big", os.urandom(1024 * 1024 + 1)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("content:")
        error = refused(lambda: get(tenant_a, "files", "missing"))
        assert error.code() == grpc.StatusCode.NOT_FOUND and error.details().startswith("path:")
        _, result = call(tenant_a, "files", "import os\nos.symlink('/etc/passwd', 'pw')")
        error = refused(lambda: get(tenant_a, "files", "pw"))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "never followed" in error.details()
        error = refused(
            lambda: tenant_a.ListSessionFiles(pb.ListSessionFilesRequest(session_id="files", directory="/etc"))
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("directory:")
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="files"))
    assert_session_gone(control_spawner)


def test_another_tenants_or_an_ended_session(tenant_a, tenant_b, control_spawner):
    open_session(tenant_a, session_id="theirs")
    try:
        put(tenant_a, "theirs", "secret.txt", b"tenant a's")
        for attempt in (
            lambda: get(tenant_b, "theirs", "secret.txt"),
            lambda: put(tenant_b, "theirs", "planted.txt", b"x"),
            lambda: tenant_b.ListSessionFiles(pb.ListSessionFilesRequest(session_id="theirs")),
        ):
            assert refused(attempt).code() == grpc.StatusCode.NOT_FOUND
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="theirs"))
    for attempt in (
        lambda: get(tenant_a, "theirs", "secret.txt"),
        lambda: put(tenant_a, "theirs", "late.txt", b"x"),
        lambda: tenant_a.ListSessionFiles(pb.ListSessionFilesRequest(session_id="theirs")),
    ):
        error = refused(attempt)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "ended" in error.details()
    assert_session_gone(control_spawner)


def test_a_creation_whose_packages_cannot_install_leaves_nothing(tenant_a, control_spawner):
    """This mesh's spawner has no egress: the packages are refused before
    anything is made, and no record is kept (as for any refused creation)."""
    request = pb.CreateSessionRequest(language=PYTHON, session_id="no-egress")
    request.packages.add(name="six")
    error = refused(lambda: tenant_a.CreateSession(request, timeout=60))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "packages" in error.details()
    assert refused(lambda: tenant_a.GetSession(pb.GetSessionRequest(session_id="no-egress"))).code() == (
        grpc.StatusCode.NOT_FOUND
    )
    bad = pb.CreateSessionRequest(language=PYTHON, files=[common.File(path="../x.py", content=b"")])
    error = refused(lambda: tenant_a.CreateSession(bad, timeout=60))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("files[0].path:")
    bad = pb.CreateSessionRequest(language=PYTHON)
    bad.packages.add(name="no such name!")
    error = refused(lambda: tenant_a.CreateSession(bad, timeout=60))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("packages[0]")
    assert control_spawner.spawner.sessions.tokens() == set()
    assert_session_gone(control_spawner)
