"""Files of an open session on the spawner itself (docs/sessions.md, "Files
of an open session"), with the sandbox's code as the attacker: files staged
at creation, put, get and list between calls and during one, and every trick
the code can play on the host's reads and writes of its workspace (symlinks
to host paths, symlinked parent directories, FIFOs, sparse files, a
directory racing with a symlink) refused or not followed."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.common.v1 import session_pb2 as cells
from sandbox.spawner.v1 import spawner_pb2 as pb
from services.common.contract.errors import InvalidArgument
from services.spawner.errors import FileNotFound, SessionNotFound, WorkspaceFull
from services.spawner.server import start
from tests.integration.conftest import assert_nothing_left, make_settings

pytestmark = pytest.mark.integration

TENANT = "tenant-f"
SANDBOX_UID = 10001
MIB = 1024 * 1024
HOST_SECRET = b"HOST-SECRET-never-to-be-read"


@pytest.fixture
def spawner(docker_api, tmp_path):
    name = f"sfile-{secrets.token_hex(4)}"
    # A small workspace, and files that may be (sparse, so) larger than it.
    settings = make_settings(
        name, tmp_path / "workspaces", capacity=2, max_workspace_bytes=64 * MIB, file_size_limit_bytes=1024 * MIB
    )
    running = start(settings)
    yield running.spawner
    running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, tmp_path / "workspaces", running.spawner.cgroups)
    assert running.spawner.cleanup_failures == 0


@pytest.fixture
def host_dir(tmp_path):
    """A directory of the host (the spawner's view) holding a secret: what a
    symlink in the workspace would point the spawner at."""
    directory = tmp_path / "host"
    directory.mkdir()
    (directory / "f").write_bytes(HOST_SECRET)
    return directory


def create(spawner, key: str, files: dict[str, bytes] | None = None, **fields) -> None:
    staged = [common.File(path=path, content=content) for path, content in (files or {}).items()]
    spawner.sessions.create(
        pb.CreateSessionRequest(session_key=key, tenant=TENANT, language=common.LANGUAGE_PYTHON, files=staged, **fields)
    )


def run(spawner, key: str, code: str, timeout_ms: int = 30_000) -> cells.CellResult:
    events = list(
        spawner.sessions.run(pb.RunCellRequest(session_key=key, tenant=TENANT, code=code, timeout_ms=timeout_ms))
    )
    result = events[-1].result
    assert result.status == cells.CELL_STATUS_OK, (result, [e.stderr for e in events])
    return result


def value(result: cells.CellResult) -> bytes:
    return next(p.data for p in result.values if p.last_value and p.mime_type == "text/plain")


def put(spawner, key: str, path: str, content: bytes, tenant: str = TENANT) -> pb.SessionFile:
    return spawner.sessions.put_file(
        pb.PutSessionFileRequest(session_key=key, tenant=tenant, path=path, content=content)
    )


def get(spawner, key: str, path: str, tenant: str = TENANT) -> tuple[bytes, list[pb.SessionFileChunk]]:
    chunks = list(spawner.sessions.get_file(pb.GetSessionFileRequest(session_key=key, tenant=tenant, path=path)))
    return b"".join(c.data for c in chunks), chunks


def listing(spawner, key: str, directory: str = "") -> pb.ListSessionFilesResponse:
    return spawner.sessions.list_files(pb.ListSessionFilesRequest(session_key=key, tenant=TENANT, directory=directory))


def close(spawner, key: str) -> None:
    spawner.sessions.close(pb.CloseSessionRequest(session_key=key, tenant=TENANT))


def test_files_at_creation_put_get_and_list(spawner):
    create(spawner, "f", files={"data.csv": b"a,b\n1,2\n", "lib/helper.py": b"X = 7\n"})
    try:
        # Staged into the working directory before the interpreter started.
        result = run(spawner, "f", "import lib.helper\nopen('data.csv').read(), lib.helper.X")
        assert value(result) == b"('a,b\\n1,2\\n', 7)"
        # Put between calls: the code reads it, owns it, and may change it.
        written = put(spawner, "f", "incoming/new.txt", b"from the caller")
        assert (written.path, written.size) == ("incoming/new.txt", 15)
        result = run(
            spawner,
            "f",
            "import os\np = 'incoming/new.txt'\ns = (open(p).read(), os.stat(p).st_uid, os.stat('incoming').st_uid)\n"
            "open(p, 'a').write('!')\ns",
        )
        assert value(result) == f"('from the caller', {SANDBOX_UID}, {SANDBOX_UID})".encode()
        # A put replaces what is there.
        put(spawner, "f", "data.csv", b"replaced")
        assert value(run(spawner, "f", "open('data.csv').read()")) == b"'replaced'"
        # A file the code writes comes back whole, in chunks, bytes equal.
        run(spawner, "f", "import os\nopen('blob.bin', 'wb').write(os.urandom(3 * 1024 * 1024 + 5))")
        expected = value(run(spawner, "f", "import hashlib\nhashlib.sha256(open('blob.bin','rb').read()).hexdigest()"))
        data, chunks = get(spawner, "f", "blob.bin")
        assert len(chunks) >= 3 and all(c.size == len(data) for c in chunks)
        assert [c.offset for c in chunks] == [sum(len(c.data) for c in chunks[:i]) for i in range(len(chunks))]
        assert f"'{hashlib.sha256(data).hexdigest()}'".encode() == expected
        data, chunks = get(spawner, "f", "incoming/new.txt")
        assert data == b"from the caller!"
        run(spawner, "f", "open('empty', 'w').close()")
        assert get(spawner, "f", "empty") == (b"", [pb.SessionFileChunk(size=0)])
        # Listed sorted, regular files only, with their sizes.
        found = listing(spawner, "f", "")
        assert [(f.path, f.size) for f in found.files] == [
            ("blob.bin", 3 * 1024 * 1024 + 5),
            ("data.csv", 8),
            ("empty", 0),
            ("incoming/new.txt", 16),
            ("lib/helper.py", 6),
        ]
        assert not found.truncated
        with pytest.raises(FileNotFound):
            get(spawner, "f", "missing.txt")
        with pytest.raises(FileNotFound):
            listing(spawner, "f", "nowhere")
    finally:
        close(spawner, "f")


def test_files_work_during_a_call(spawner):
    create(spawner, "busy")
    try:
        events = spawner.sessions.run(
            pb.RunCellRequest(
                session_key="busy",
                tenant=TENANT,
                code="import time, os\nopen('during.txt', 'w').write('written')\n"
                "while not os.path.exists('go'): time.sleep(0.05)\nopen('go').read()",
                timeout_ms=30_000,
            )
        )
        deadline = threading.Event()
        for _ in range(100):
            if any(f.path == "during.txt" for f in listing(spawner, "busy", "").files):
                break
            deadline.wait(0.1)
        assert get(spawner, "busy", "during.txt")[0] == b"written"
        put(spawner, "busy", "go", b"released")
        result = list(events)[-1].result
        assert result.status == cells.CELL_STATUS_OK and value(result) == b"'released'"
    finally:
        close(spawner, "busy")


def test_bad_paths_and_sizes_name_the_field(spawner):
    create(spawner, "bad")
    try:
        for path in ("../etc/passwd", "/etc/passwd", "../../x", "./x", "", "/x", ".hidden"):
            with pytest.raises(InvalidArgument) as refused:
                get(spawner, "bad", path)
            assert refused.value.field == "path", path
            with pytest.raises(InvalidArgument) as refused:
                put(spawner, "bad", path, b"x")
            assert refused.value.field == "path", path
        with pytest.raises(InvalidArgument) as refused:
            listing(spawner, "bad", "../..")
        assert refused.value.field == "directory"
        cap = spawner.settings.limits.max_file_bytes
        with pytest.raises(InvalidArgument) as refused:
            put(spawner, "bad", "big", b"x" * (cap + 1))
        assert refused.value.field == "content"
        assert put(spawner, "bad", "big", b"x" * cap).size == cap
        # The workspace's own cap: the code fills it, then a put has no room.
        run(
            spawner,
            "bad",
            "try:\n    with open('fill', 'wb') as f:\n        while True: f.write(b'0' * 1048576)\n"
            "except OSError: pass",
        )
        with pytest.raises(WorkspaceFull) as full:
            put(spawner, "bad", "more", os.urandom(cap))
        assert str(full.value).startswith("content:")
        assert all(not f.path.startswith(".sandbox-put-") for f in listing(spawner, "bad", "").files)
        with pytest.raises(SessionNotFound):  # another tenant's session is nobody's
            get(spawner, "bad", "big", tenant="someone-else")
        with pytest.raises(SessionNotFound):
            put(spawner, "bad", "x", b"x", tenant="someone-else")
    finally:
        close(spawner, "bad")
    with pytest.raises(SessionNotFound):  # closed: its workspace is gone
        get(spawner, "bad", "big")
    with pytest.raises(SessionNotFound):
        put(spawner, "bad", "big", b"x")


def test_links_fifos_and_sparse_files_are_never_followed_or_read(spawner, host_dir):
    create(spawner, "hostile")
    try:
        run(
            spawner,
            "hostile",
            "import os\n"
            "os.symlink('/etc/passwd', 'passwd')\n"
            f"os.symlink({str(host_dir / 'f')!r}, 'host-file')\n"
            f"os.symlink({str(host_dir)!r}, 'host-dir')\n"
            "os.symlink('/etc', 'etc')\n"
            "os.mkfifo('fifo')\n"
            "import resource\n"
            "most = resource.getrlimit(resource.RLIMIT_FSIZE)[0]\n"
            "open('sparse', 'wb').truncate(most if most > 0 else 10**12)\n"
            "os.makedirs('deep/' * 40 + 'end')\n"
            "open('deep/' * 40 + 'end/x', 'w').write('deep')\n",
        )
        for path in ("passwd", "host-file", "host-dir/f", "etc/passwd", "fifo", "sparse"):
            with pytest.raises(InvalidArgument) as refused:
                get(spawner, "hostile", path)
            assert refused.value.field == "path", path
        # A put through a symlinked directory writes nothing on the host.
        for path in ("host-dir/planted", "etc/planted"):
            with pytest.raises(InvalidArgument):
                put(spawner, "hostile", path, b"planted")
        assert sorted(p.name for p in host_dir.iterdir()) == ["f"]
        # A put over a link or a FIFO replaces the entry, never its target.
        put(spawner, "hostile", "host-file", b"mine")
        put(spawner, "hostile", "fifo", b"now a file")
        assert (host_dir / "f").read_bytes() == HOST_SECRET
        assert get(spawner, "hostile", "fifo")[0] == b"now a file"
        # Listed: regular files only; links, FIFOs and too-deep trees are not.
        found = listing(spawner, "hostile", "")
        paths = [f.path for f in found.files]
        assert "host-file" in paths and "fifo" in paths and "sparse" in paths
        assert not any(p.startswith(("passwd", "host-dir", "etc", "deep")) for p in paths)
        assert found.truncated  # the deep tree was cut
        with pytest.raises(InvalidArgument):
            listing(spawner, "hostile", "host-dir")
    finally:
        close(spawner, "hostile")


def test_many_files_are_listed_up_to_the_cap(spawner):
    create(spawner, "many")
    try:
        run(spawner, "many", "import os\nos.mkdir('m')\nfor i in range(1500): open(f'm/{i:05}', 'w').close()")
        found = listing(spawner, "many", "m")
        assert len(found.files) == 1000 and found.truncated
        assert found.files[0].path == "m/00000"
    finally:
        close(spawner, "many")


# Swaps the directory `inside` and a symlink to a host directory, atomically
# (renameat2 RENAME_EXCHANGE), as fast as it can for a few seconds.
RACE = """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
os.mkdir('inside')
open('inside/f', 'wb').write(b'inside')
os.symlink(HOST, 'link')
open('ready', 'w').close()
swaps = 0
end = time.monotonic() + 6
while time.monotonic() < end:
    if libc.renameat2(-100, b'inside', -100, b'link', 2) != 0:
        raise OSError(ctypes.get_errno(), 'renameat2')
    swaps += 1
swaps
"""


def test_a_directory_racing_with_a_symlink_is_never_followed(spawner, host_dir):
    """The code swaps a directory on the path with a symlink to a host
    directory as fast as it can, during the spawner's reads and writes."""
    create(spawner, "race")
    try:
        events = spawner.sessions.run(
            pb.RunCellRequest(
                session_key="race",
                tenant=TENANT,
                code=RACE.replace("HOST", repr(str(host_dir))),
                timeout_ms=30_000,
            )
        )
        waited = threading.Event()
        for _ in range(200):
            if any(f.path == "ready" for f in listing(spawner, "race", "").files):
                break
            waited.wait(0.05)
        outcomes = {"read": 0, "refused": 0, "written": 0}
        for attempt in range(400):
            try:
                data, _ = get(spawner, "race", "inside/f")
                assert data == b"inside"
                outcomes["read"] += 1
            except (InvalidArgument, FileNotFound):
                outcomes["refused"] += 1
            try:
                put(spawner, "race", f"inside/p{attempt}", b"planted")
                outcomes["written"] += 1
            except (InvalidArgument, FileNotFound):
                outcomes["refused"] += 1
        result = list(events)[-1].result
        assert result.status == cells.CELL_STATUS_OK, result
        assert int(value(result)) > 100  # it did race
        assert min(outcomes.values()) > 0, outcomes  # both sides of the race were met
        assert sorted(p.name for p in host_dir.iterdir()) == ["f"]
        assert (host_dir / "f").read_bytes() == HOST_SECRET
    finally:
        close(spawner, "race")
