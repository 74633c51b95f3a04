"""Runnable artifacts on SQLite and on a real PostgreSQL (C's `database`
fixture): every refusal, optimistic concurrency under real concurrency, the
entry following renames, package unions, caps, tenant isolation, and the
gRPC surface through an in-process server with the tenant interceptor."""

from __future__ import annotations

import functools
import hashlib
import threading
from concurrent import futures

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import artifacts_pb2 as pb
from sandbox.control.v1 import artifacts_pb2_grpc
from services.control.artifacts.service import ArtifactService
from services.control.artifacts.servicer import ArtifactsServicer, add_to_server
from services.control.auth import TenantAuthInterceptor
from services.control.config import ArtifactLimits, QuotaLimits
from services.control.db import Database, head_revision
from services.control.errors import NotFound, QuotaExceeded, StaleRevision
from services.control.quotas import ledger
from services.control.quotas.models import Stored
from tests.integration.control.conftest import TENANT_KEYS, control_channel

LIMITS = ArtifactLimits(max_files=5, max_file_bytes=100, max_total_bytes=250, max_path_length=64, max_packages=4)
PY = common.LANGUAGE_PYTHON
C = grpc.StatusCode


@pytest.fixture
def artifacts(database):
    return ArtifactService(database, LIMITS)


@pytest.fixture
def port(database):
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        interceptors=[TenantAuthInterceptor({t: k.encode() for t, k in TENANT_KEYS.items()})],
    )
    add_to_server(server, ArtifactsServicer(ArtifactService(database, LIMITS)))
    bound = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield bound
    server.stop(None).wait()


@pytest.fixture
def stub_a(port):
    with control_channel(port, "tenant-a") as channel:
        yield artifacts_pb2_grpc.ArtifactsStub(channel)


@pytest.fixture
def stub_b(port):
    with control_channel(port, "tenant-b") as channel:
        yield artifacts_pb2_grpc.ArtifactsStub(channel)


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failure:
        call()
    return failure.value


def _project(stub) -> pb.Artifact:
    """main.py (the entry) and lib/util.py; revision 3."""
    art = stub.CreateArtifact(pb.CreateArtifactRequest(language=PY, title="demo", entry="main.py"))
    stub.CreateFile(
        pb.CreateFileRequest(artifact_id=art.artifact_id, expected_revision=1, path="main.py", content=b"print(1)\n")
    )
    done = stub.CreateFile(
        pb.CreateFileRequest(artifact_id=art.artifact_id, expected_revision=2, path="lib/util.py", content=b"x = 1\n")
    )
    assert done.artifact.revision == 3
    return done.artifact


# ---- the gRPC surface, end to end ------------------------------------------------


def test_lifecycle_over_grpc(stub_a):
    art = stub_a.CreateArtifact(
        pb.CreateArtifactRequest(
            language=PY, title="Report", entry="main.py", packages=[common.Package(name="requests", version="==2.0")]
        )
    )
    assert art.revision == 1 and art.artifact_id.startswith("art_") and art.created_at_ms == art.updated_at_ms
    assert (art.file_count, art.total_bytes, art.entry) == (0, 0, "main.py")
    aid = art.artifact_id

    made = stub_a.CreateFile(
        pb.CreateFileRequest(artifact_id=aid, expected_revision=1, path="main.py", content=b"print('hi')\n")
    )
    assert made.artifact.revision == 2 and made.file.size == 12 and made.file.modified_revision == 2
    assert len(made.file.sha256) == 64
    stub_a.CreateFile(pb.CreateFileRequest(artifact_id=aid, expected_revision=2, path="data/in.txt", content=b"abc"))
    changed = stub_a.UpdateFile(
        pb.UpdateFileRequest(artifact_id=aid, expected_revision=3, path="data/in.txt", content=b"abcd")
    )
    assert (changed.artifact.revision, changed.file.size, changed.artifact.total_bytes) == (4, 4, 16)

    read = stub_a.ReadFile(pb.ReadFileRequest(artifact_id=aid, path="data/in.txt"))
    assert (read.content, read.revision, read.file.modified_revision) == (b"abcd", 4, 4)

    moved = stub_a.RenameFile(
        pb.RenameFileRequest(artifact_id=aid, expected_revision=4, path="main.py", new_path="src/main.py")
    )
    assert (moved.artifact.entry, moved.file.path, moved.artifact.revision) == ("src/main.py", "src/main.py", 5)

    listing = stub_a.ListFiles(pb.ListFilesRequest(artifact_id=aid))
    assert [(f.path, f.size) for f in listing.files] == [("data/in.txt", 4), ("src/main.py", 12)]
    assert (listing.revision, listing.entry) == (5, "src/main.py")
    assert "content" not in pb.ArtifactFile.DESCRIPTOR.fields_by_name  # listings carry metadata only

    gone = stub_a.DeleteFile(pb.DeleteFileRequest(artifact_id=aid, expected_revision=5, path="data/in.txt"))
    assert (gone.file.path, gone.artifact.revision, gone.artifact.file_count) == ("data/in.txt", 6, 1)

    with_packages = stub_a.AddPackages(
        pb.AddPackagesRequest(
            artifact_id=aid,
            expected_revision=6,
            packages=[common.Package(name="Requests", version=">=2.31"), common.Package(name="numpy")],
        )
    )
    assert [(p.name, p.version) for p in with_packages.packages] == [("Requests", ">=2.31"), ("numpy", "")]

    renamed = stub_a.UpdateArtifact(pb.UpdateArtifactRequest(artifact_id=aid, expected_revision=7, title="Report v2"))
    assert (renamed.title, renamed.entry, renamed.revision) == ("Report v2", "src/main.py", 8)
    cleared = stub_a.UpdateArtifact(pb.UpdateArtifactRequest(artifact_id=aid, expected_revision=8, entry=""))
    assert (cleared.title, cleared.entry) == ("Report v2", "")

    fetched = stub_a.GetArtifact(pb.GetArtifactRequest(artifact_id=aid))
    assert fetched == cleared and fetched.updated_at_ms >= fetched.created_at_ms


def test_list_artifacts_pages_newest_first(stub_a, stub_b):
    made = [stub_a.CreateArtifact(pb.CreateArtifactRequest(language=PY, title=f"n{i}")).artifact_id for i in range(5)]
    seen, token, pages = [], "", 0
    while True:
        page = stub_a.ListArtifacts(pb.ListArtifactsRequest(page_size=2, page_token=token))
        seen += [a.artifact_id for a in page.artifacts]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3 and sorted(seen) == sorted(made) and len(seen) == 5
    everything = stub_a.ListArtifacts(pb.ListArtifactsRequest())
    assert [a.artifact_id for a in everything.artifacts] == seen
    created = [a.created_at_ms for a in everything.artifacts]
    assert created == sorted(created, reverse=True)
    assert list(stub_b.ListArtifacts(pb.ListArtifactsRequest()).artifacts) == []
    assert (
        _error(lambda: stub_a.ListArtifacts(pb.ListArtifactsRequest(page_token="nonsense!"))).code()
        == C.INVALID_ARGUMENT
    )


# ---- every refusal, table-driven ------------------------------------------------------------

# (name, request method, request fields; the artifact is at revision 3 with
# main.py (entry) and lib/util.py; "REV" stands for the current revision)
REFUSALS = [
    ("stale revision", "CreateFile", dict(expected_revision=2, path="new.py", content=b""), C.ABORTED),
    ("revision from the future", "UpdateFile", dict(expected_revision=4, path="main.py", content=b""), C.ABORTED),
    ("stale beats a missing path", "DeleteFile", dict(expected_revision=1, path="missing.py"), C.ABORTED),
    ("no expected revision", "CreateFile", dict(expected_revision=0, path="new.py"), C.INVALID_ARGUMENT),
    ("create on an existing path", "CreateFile", dict(path="main.py", content=b"x"), C.ALREADY_EXISTS),
    ("create differing in case", "CreateFile", dict(path="MAIN.py"), C.ALREADY_EXISTS),
    ("create differing in Unicode form", "CreateFile", dict(path="lib/util.py"), C.ALREADY_EXISTS),
    ("create under a file", "CreateFile", dict(path="main.py/x.py"), C.ALREADY_EXISTS),
    ("create where a directory is", "CreateFile", dict(path="LIB"), C.ALREADY_EXISTS),
    ("update a missing path", "UpdateFile", dict(path="missing.py", content=b"x"), C.NOT_FOUND),
    ("update differing in case", "UpdateFile", dict(path="Main.py", content=b"x"), C.NOT_FOUND),
    ("delete a missing path", "DeleteFile", dict(path="missing.py"), C.NOT_FOUND),
    ("delete the entry file", "DeleteFile", dict(path="main.py"), C.FAILED_PRECONDITION),
    ("rename a missing path", "RenameFile", dict(path="missing.py", new_path="x.py"), C.NOT_FOUND),
    ("rename onto an existing path", "RenameFile", dict(path="lib/util.py", new_path="main.py"), C.ALREADY_EXISTS),
    ("rename onto a case variant", "RenameFile", dict(path="lib/util.py", new_path="Main.PY"), C.ALREADY_EXISTS),
    ("rename under a file", "RenameFile", dict(path="lib/util.py", new_path="main.py/u.py"), C.ALREADY_EXISTS),
    ("rename onto itself", "RenameFile", dict(path="main.py", new_path="main.py"), C.INVALID_ARGUMENT),
    ("read a missing path", "ReadFile", dict(path="missing.py"), C.NOT_FOUND),
    ("entry naming no file", "UpdateArtifact", dict(entry="missing.py"), C.FAILED_PRECONDITION),
    ("entry breaking a path rule", "UpdateArtifact", dict(entry="../x.py"), C.INVALID_ARGUMENT),
    ("title over its cap", "UpdateArtifact", dict(title="x" * 201), C.INVALID_ARGUMENT),
    ("absolute path", "CreateFile", dict(path="/etc/x.py"), C.INVALID_ARGUMENT),
    ("dot-dot", "CreateFile", dict(path="a/../../x.py"), C.INVALID_ARGUMENT),
    ("NUL", "CreateFile", dict(path="a\x00.py"), C.INVALID_ARGUMENT),
    ("control character", "CreateFile", dict(path="a\x07.py"), C.INVALID_ARGUMENT),
    ("bidi control", "CreateFile", dict(path="evil\u202eyp.txt"), C.INVALID_ARGUMENT),
    ("hidden segment", "CreateFile", dict(path="a/.hidden.py"), C.INVALID_ARGUMENT),
    ("backslash", "CreateFile", dict(path="a\\b.py"), C.INVALID_ARGUMENT),
    ("path over max length", "CreateFile", dict(path="x" * 65), C.INVALID_ARGUMENT),
    ("bad rename target", "RenameFile", dict(path="main.py", new_path="/abs.py"), C.INVALID_ARGUMENT),
    ("file over its cap", "CreateFile", dict(path="big.py", content=b"x" * 101), C.INVALID_ARGUMENT),
    ("update over the file cap", "UpdateFile", dict(path="main.py", content=b"x" * 101), C.INVALID_ARGUMENT),
    ("no packages", "AddPackages", dict(packages=[]), C.INVALID_ARGUMENT),
    ("bad package name", "AddPackages", dict(packages=[common.Package(name="-r x")]), C.INVALID_ARGUMENT),
    (
        "bad package version",
        "AddPackages",
        dict(packages=[common.Package(name="a", version="@evil")]),
        C.INVALID_ARGUMENT,
    ),
    ("unknown artifact", "GetArtifact", dict(artifact_id="art_missing"), C.NOT_FOUND),
    ("unknown artifact on write", "CreateFile", dict(artifact_id="art_missing", path="x.py"), C.NOT_FOUND),
    ("malformed artifact id", "ListFiles", dict(artifact_id="../etc"), C.INVALID_ARGUMENT),
]
# Caps that depend on what the artifact already holds: test_caps.


@pytest.mark.parametrize("name,method,fields,code", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_change_nothing(stub_a, name, method, fields, code):
    art = _project(stub_a)
    request_type = getattr(pb, f"{method}Request")
    values = {"artifact_id": art.artifact_id}
    if "expected_revision" in request_type.DESCRIPTOR.fields_by_name:
        values["expected_revision"] = art.revision
    values.update(fields)
    if name == "create differing in Unicode form":
        # NFD spelling of an NFC path that exists
        stub_a.CreateFile(pb.CreateFileRequest(artifact_id=art.artifact_id, expected_revision=3, path="caf\u00e9.py"))
        art = stub_a.GetArtifact(pb.GetArtifactRequest(artifact_id=art.artifact_id))
        values.update(expected_revision=art.revision, path="cafe\u0301.py")
    before = stub_a.ListFiles(pb.ListFilesRequest(artifact_id=art.artifact_id))

    error = _error(lambda: getattr(stub_a, method)(request_type(**values)))
    assert error.code() == code, error.details()

    after = stub_a.ListFiles(pb.ListFilesRequest(artifact_id=art.artifact_id))
    assert after == before
    assert stub_a.GetArtifact(pb.GetArtifactRequest(artifact_id=art.artifact_id)) == art


def test_invalid_argument_names_the_field(stub_a):
    art = _project(stub_a)
    error = _error(
        lambda: stub_a.RenameFile(
            pb.RenameFileRequest(artifact_id=art.artifact_id, expected_revision=3, path="main.py", new_path="a/../b")
        )
    )
    status = rpc_status.from_call(error)
    detail = error_details_pb2.BadRequest()
    status.details[0].Unpack(detail)
    assert detail.field_violations[0].field == "new_path"
    assert error.details().startswith("new_path:")


def test_stale_write_reports_the_current_revision(stub_a):
    art = _project(stub_a)
    error = _error(
        lambda: stub_a.UpdateFile(
            pb.UpdateFileRequest(artifact_id=art.artifact_id, expected_revision=1, path="main.py")
        )
    )
    assert error.code() == C.ABORTED and "revision 3" in error.details()


def test_create_artifact_refusals(stub_a):
    cases = [
        pb.CreateArtifactRequest(),  # no language
        pb.CreateArtifactRequest(language=PY, entry="/main.py"),
        pb.CreateArtifactRequest(language=PY, title="a\nb"),
        pb.CreateArtifactRequest(language=PY, packages=[common.Package(name="x"), common.Package(name="X")]),
        pb.CreateArtifactRequest(language=common.LANGUAGE_NODE, packages=[common.Package(name="Upper")]),
        pb.CreateArtifactRequest(language=PY, packages=[common.Package(name=f"p{i}") for i in range(5)]),
    ]
    for request in cases:
        assert _error(functools.partial(stub_a.CreateArtifact, request)).code() == C.INVALID_ARGUMENT, request
    assert list(stub_a.ListArtifacts(pb.ListArtifactsRequest()).artifacts) == []


# ---- caps ---------------------------------------------------------------------------


def test_caps(stub_a):
    aid = stub_a.CreateArtifact(pb.CreateArtifactRequest(language=PY)).artifact_id
    rev = 1
    for i in range(2):  # 200 of 250 bytes
        rev = stub_a.CreateFile(
            pb.CreateFileRequest(artifact_id=aid, expected_revision=rev, path=f"f{i}.py", content=b"x" * 100)
        ).artifact.revision
    over_total = _error(
        lambda: stub_a.CreateFile(
            pb.CreateFileRequest(artifact_id=aid, expected_revision=rev, path="g.py", content=b"x" * 51)
        )
    )
    assert over_total.code() == C.RESOURCE_EXHAUSTED
    detail = error_details_pb2.QuotaFailure()
    rpc_status.from_call(over_total).details[0].Unpack(detail)
    assert detail.violations[0].subject == f"artifact:{aid}/total_bytes"
    # An update is judged by the size it replaces: 100 -> 50 frees room.
    rev = stub_a.UpdateFile(
        pb.UpdateFileRequest(artifact_id=aid, expected_revision=rev, path="f0.py", content=b"y" * 50)
    ).artifact.revision
    rev = stub_a.CreateFile(
        pb.CreateFileRequest(artifact_id=aid, expected_revision=rev, path="g.py", content=b"x" * 100)
    ).artifact.revision
    # 250 of 250: growing any file by one byte is over.
    over_update = _error(
        lambda: stub_a.UpdateFile(
            pb.UpdateFileRequest(artifact_id=aid, expected_revision=rev, path="f0.py", content=b"x" * 51)
        )
    )
    assert over_update.code() == C.RESOURCE_EXHAUSTED
    for i in range(2):  # 5 files, the cap
        rev = stub_a.CreateFile(
            pb.CreateFileRequest(artifact_id=aid, expected_revision=rev, path=f"e{i}.py")
        ).artifact.revision
    too_many = _error(
        lambda: stub_a.CreateFile(pb.CreateFileRequest(artifact_id=aid, expected_revision=rev, path="h.py"))
    )
    assert too_many.code() == C.RESOURCE_EXHAUSTED and "at most 5 files" in too_many.details()
    art = stub_a.GetArtifact(pb.GetArtifactRequest(artifact_id=aid))
    assert (art.revision, art.file_count, art.total_bytes) == (rev, 5, 250)
    # Renaming at the caps is allowed: it never changes a total.
    moved = stub_a.RenameFile(
        pb.RenameFileRequest(artifact_id=aid, expected_revision=rev, path="e0.py", new_path="d/e0.py")
    )
    assert (moved.file.path, moved.artifact.revision) == ("d/e0.py", rev + 1)
    assert (moved.artifact.file_count, moved.artifact.total_bytes) == (5, 250)


def _tenant_storage(database, tenant: str) -> Stored:
    with database.read() as session:
        return Stored.of(ledger.read(session, tenant))


def test_tenant_storage_quota(database):
    """Artifacts and their bytes count against the tenant, across artifacts:
    refused RESOURCE_EXHAUSTED naming what is full, nothing changed."""
    quota = QuotaLimits(max_stored_artifacts=2, max_stored_artifact_bytes=150)
    service = ArtifactService(database, LIMITS, quota_for=lambda tenant: quota)
    first = service.create("t", PY, "", "", [])
    second = service.create("t", PY, "", "", [])
    with pytest.raises(QuotaExceeded) as exceeded:
        service.create("t", PY, "", "", [])
    assert exceeded.value.subject == "tenant:t/stored_artifacts"
    service.create("u", PY, "", "", [])  # another tenant's count
    service.create_file("t", first.artifact_id, 1, "a.py", b"x" * 100)
    with pytest.raises(QuotaExceeded) as exceeded:
        service.create_file("t", second.artifact_id, 1, "b.py", b"x" * 51)
    assert exceeded.value.subject == "tenant:t/stored_artifact_bytes"
    assert service.get("t", second.artifact_id).revision == 1  # the refused write left no trace
    service.create_file("t", second.artifact_id, 1, "b.py", b"x" * 50)
    assert _tenant_storage(database, "t") == Stored(artifacts=2, artifact_bytes=150)
    # An update is charged its growth; shrinking and deleting give room back.
    with pytest.raises(QuotaExceeded):
        service.update_file("t", second.artifact_id, 2, "b.py", b"y" * 51)
    service.update_file("t", first.artifact_id, 2, "a.py", b"y" * 40)
    service.delete_file("t", second.artifact_id, 2, "b.py")
    assert _tenant_storage(database, "t") == Stored(artifacts=2, artifact_bytes=40)
    service.create_file("t", second.artifact_id, 3, "c.py", b"z" * 100)
    service.rename_file("t", second.artifact_id, 4, "c.py", "d.py")
    assert _tenant_storage(database, "t") == Stored(artifacts=2, artifact_bytes=140)


def test_tenant_storage_quota_over_grpc(database):
    quota = QuotaLimits(max_stored_artifacts=1)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[TenantAuthInterceptor({t: k.encode() for t, k in TENANT_KEYS.items()})],
    )
    add_to_server(server, ArtifactsServicer(ArtifactService(database, LIMITS, quota_for=lambda tenant: quota)))
    bound = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with control_channel(bound, "tenant-a") as channel:
            stub = artifacts_pb2_grpc.ArtifactsStub(channel)
            stub.CreateArtifact(pb.CreateArtifactRequest(language=PY))
            error = _error(lambda: stub.CreateArtifact(pb.CreateArtifactRequest(language=PY)))
    finally:
        server.stop(None).wait()
    assert error.code() == C.RESOURCE_EXHAUSTED
    detail = error_details_pb2.QuotaFailure()
    rpc_status.from_call(error).details[0].Unpack(detail)
    assert detail.violations[0].subject == "tenant:tenant-a/stored_artifacts"


def test_package_cap_counts_the_union(stub_a):
    aid = stub_a.CreateArtifact(
        pb.CreateArtifactRequest(language=PY, packages=[common.Package(name=n) for n in ("a", "b", "c")])
    ).artifact_id
    # Replacing a listed package does not grow the list...
    art = stub_a.AddPackages(
        pb.AddPackagesRequest(artifact_id=aid, expected_revision=1, packages=[common.Package(name="A", version="==1")])
    )
    assert [(p.name, p.version) for p in art.packages] == [("A", "==1"), ("b", ""), ("c", "")]
    art = stub_a.AddPackages(
        pb.AddPackagesRequest(artifact_id=aid, expected_revision=2, packages=[common.Package(name="d")])
    )
    # ...a fifth name does.
    error = _error(
        lambda: stub_a.AddPackages(
            pb.AddPackagesRequest(artifact_id=aid, expected_revision=3, packages=[common.Package(name="e")])
        )
    )
    assert error.code() == C.RESOURCE_EXHAUSTED
    assert len(stub_a.GetArtifact(pb.GetArtifactRequest(artifact_id=aid)).packages) == 4


# ---- entry follows renames -------------------------------------------------------------------


def test_entry_follows_renames(artifacts):
    art = artifacts.create("t", PY, "", "main.py", [])
    artifacts.create_file("t", art.artifact_id, 1, "main.py", b"print(1)")
    view, _ = artifacts.rename_file("t", art.artifact_id, 2, "main.py", "Main.py")  # case only
    assert view.entry == "Main.py"
    view, _ = artifacts.rename_file("t", art.artifact_id, 3, "Main.py", "app/run.py")
    assert view.entry == "app/run.py"
    artifacts.create_file("t", art.artifact_id, 4, "other.py", b"")
    view, _ = artifacts.rename_file("t", art.artifact_id, 5, "other.py", "app/other.py")
    assert view.entry == "app/run.py"  # renaming another file leaves it
    # The file moved with its content; the old path is free again.
    _, content, revision = artifacts.read_file("t", art.artifact_id, "app/run.py")
    assert (content, revision) == (b"print(1)", 6)
    with pytest.raises(NotFound):
        artifacts.read_file("t", art.artifact_id, "main.py")
    artifacts.create_file("t", art.artifact_id, 6, "main.py", b"again")
    # Once the entry points elsewhere the old entry file can be deleted.
    artifacts.update("t", art.artifact_id, 7, entry="main.py")
    view, _ = artifacts.delete_file("t", art.artifact_id, 8, "app/run.py")
    assert (view.entry, view.file_count, view.revision) == ("main.py", 2, 9)


def test_a_rename_frees_the_case_of_its_source(artifacts):
    art = artifacts.create("t", PY, "", "", [])
    artifacts.create_file("t", art.artifact_id, 1, "a/x.py", b"")
    artifacts.rename_file("t", art.artifact_id, 2, "a/x.py", "b.py")
    view, _ = artifacts.create_file("t", art.artifact_id, 3, "A", b"")  # "a" is no longer a directory
    assert view.file_count == 2


# ---- optimistic concurrency under real concurrency ------------------------------------------


def _race(n, work):
    barrier = threading.Barrier(n)
    outcomes = [None] * n

    def run(i):
        barrier.wait()
        try:
            outcomes[i] = ("ok", work(i))
        except Exception as exc:  # recorded for the assertions
            outcomes[i] = ("error", exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def test_ten_writers_one_revision_exactly_one_wins(artifacts):
    art = artifacts.create("t", PY, "", "main.py", [])
    artifacts.create_file("t", art.artifact_id, 1, "main.py", b"v0")
    outcomes = _race(10, lambda i: artifacts.update_file("t", art.artifact_id, 2, "main.py", f"v{i + 1}".encode()))
    wins = [value for kind, value in outcomes if kind == "ok"]
    losses = [value for kind, value in outcomes if kind == "error"]
    assert len(wins) == 1 and len(losses) == 9
    assert all(isinstance(exc, StaleRevision) and exc.current == 3 for exc in losses), losses
    winner_view, winner_file = wins[0]
    _, content, revision = artifacts.read_file("t", art.artifact_id, "main.py")
    assert revision == winner_view.revision == 3
    assert winner_file.sha256 == hashlib.sha256(content).hexdigest()


def test_mixed_writers_one_revision_exactly_one_wins(artifacts):
    art = artifacts.create("t", PY, "", "", [])
    ops = [
        lambda i: artifacts.create_file("t", art.artifact_id, 1, f"f{i}.py", b"x"),
        lambda i: artifacts.add_packages("t", art.artifact_id, 1, [common.Package(name=f"p{i}")]),
        lambda i: artifacts.update("t", art.artifact_id, 1, title=f"t{i}"),
    ]
    outcomes = _race(9, lambda i: ops[i % 3](i))
    assert sum(kind == "ok" for kind, _ in outcomes) == 1
    assert all(isinstance(v, StaleRevision) for kind, v in outcomes if kind == "error")
    assert artifacts.get("t", art.artifact_id).revision == 2


def test_retrying_writers_lose_no_update(artifacts):
    art = artifacts.create("t", PY, "", "", [])

    def add_with_retry(i):
        while True:
            revision = artifacts.get("t", art.artifact_id).revision
            try:
                return artifacts.create_file("t", art.artifact_id, revision, f"w{i}.py", b"ab")
            except StaleRevision:
                continue

    outcomes = _race(5, add_with_retry)
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    revisions = sorted(view.revision for _, (view, _file) in outcomes)
    assert revisions == [2, 3, 4, 5, 6]  # each write bumped exactly once
    final = artifacts.get("t", art.artifact_id)
    assert (final.revision, final.file_count, final.total_bytes) == (6, 5, 10)


def test_concurrent_writers_over_grpc(stub_a):
    art = _project(stub_a)
    outcomes = _race(
        10,
        lambda i: stub_a.UpdateFile(
            pb.UpdateFileRequest(
                artifact_id=art.artifact_id, expected_revision=3, path="lib/util.py", content=b"%d" % i
            )
        ),
    )
    codes = sorted("OK" if kind == "ok" else value.code().name for kind, value in outcomes)
    assert codes == ["ABORTED"] * 9 + ["OK"]


# ---- tenants -----------------------------------------------------------------------------


def test_another_tenant_gets_not_found(stub_a, stub_b):
    art = _project(stub_a)
    aid = art.artifact_id
    calls = {
        "GetArtifact": pb.GetArtifactRequest(artifact_id=aid),
        "UpdateArtifact": pb.UpdateArtifactRequest(artifact_id=aid, expected_revision=3, title="mine"),
        "CreateFile": pb.CreateFileRequest(artifact_id=aid, expected_revision=3, path="x.py"),
        "UpdateFile": pb.UpdateFileRequest(artifact_id=aid, expected_revision=3, path="main.py", content=b"pwned"),
        "DeleteFile": pb.DeleteFileRequest(artifact_id=aid, expected_revision=3, path="lib/util.py"),
        "RenameFile": pb.RenameFileRequest(artifact_id=aid, expected_revision=3, path="main.py", new_path="y.py"),
        "ReadFile": pb.ReadFileRequest(artifact_id=aid, path="main.py"),
        "ListFiles": pb.ListFilesRequest(artifact_id=aid),
        "AddPackages": pb.AddPackagesRequest(artifact_id=aid, expected_revision=3, packages=[common.Package(name="x")]),
    }
    for method, request in calls.items():
        theirs = _error(functools.partial(getattr(stub_b, method), request))
        assert theirs.code() == C.NOT_FOUND, method
        # The same answer as for an id that does not exist at all.
        nobody = type(request)()
        nobody.CopyFrom(request)
        nobody.artifact_id = "art_doesnotexist"
        missing = _error(functools.partial(getattr(stub_b, method), nobody))
        assert (missing.code(), missing.details().replace("art_doesnotexist", aid)) == (C.NOT_FOUND, theirs.details())
    assert list(stub_b.ListArtifacts(pb.ListArtifactsRequest()).artifacts) == []
    # Nothing of tenant-a's changed.
    assert stub_a.GetArtifact(pb.GetArtifactRequest(artifact_id=aid)) == art
    assert stub_a.ReadFile(pb.ReadFileRequest(artifact_id=aid, path="main.py")).content == b"print(1)\n"


def test_tenant_must_authenticate(port):
    with control_channel(port, "tenant-a", key="wrong-key") as channel:
        stub = artifacts_pb2_grpc.ArtifactsStub(channel)
        assert _error(lambda: stub.ListArtifacts(pb.ListArtifactsRequest())).code() == C.UNAUTHENTICATED
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = artifacts_pb2_grpc.ArtifactsStub(channel)
        assert _error(lambda: stub.ListArtifacts(pb.ListArtifactsRequest())).code() == C.UNAUTHENTICATED


# ---- schema -------------------------------------------------------------------------------


def test_upgrade_from_the_previous_head_adds_the_tables(database_url):
    old = Database(database_url)
    old.migrate("0002")
    old.dispose()
    upgraded = Database(database_url)
    upgraded.migrate()
    assert upgraded.revision() == head_revision()
    art = ArtifactService(upgraded, LIMITS).create("t", PY, "x", "", [])
    assert art.revision == 1
    upgraded.dispose()
