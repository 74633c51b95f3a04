"""Paths and contents of a session's files, judged as text before anything
reaches a workspace; and the status a failed install of a session's packages
travels in (services/common/contract/session_files.py, install_failures.py)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from services.common.contract.capacity import no_free_slot_status
from services.common.contract.errors import InvalidArgument
from services.common.contract.install_failures import install_failure_of, install_failure_status
from services.common.contract.limits import RequestLimits
from services.common.contract.session_files import check_content, check_directory, check_file_path, shown_path

LIMITS = RequestLimits(max_path_length=40, max_file_bytes=10)


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("data.csv", "code/data.csv"),
        ("deep/er/file.txt", "code/deep/er/file.txt"),
        ("/workspace/output/chart.png", "output/chart.png"),
        ("/workspace/code/a", "code/a"),
    ],
)
def test_paths_are_the_working_directorys_or_absolute_in_the_workspace(path, inside):
    assert check_file_path(path, LIMITS) == inside
    assert shown_path(inside) == path.removeprefix("/workspace/code/")


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "../etc/passwd",
        "code/../../etc/passwd",
        "code/./x",
        "code//x",
        "code/",
        "code/.hidden",
        ".sandbox-put-1234",
        "code\\x",
        "code/x\x00y",
        "code/\u202ex",
        "/workspace",
        "/workspace/",
        "/workspacex/y",
        "/workspace/../etc/passwd",
        "p" * 41,
    ],
)
def test_bad_paths_name_the_field(path):
    with pytest.raises(InvalidArgument) as refused:
        check_file_path(path, LIMITS)
    assert refused.value.field == "path"


def test_a_directory_is_the_working_directory_by_default_or_the_whole_workspace():
    assert check_directory("", LIMITS) == "code"
    assert check_directory("sub/", LIMITS) == "code/sub"
    assert check_directory("/workspace", LIMITS) == ""
    assert check_directory("/workspace/", LIMITS) == ""
    assert check_directory("/workspace/output", LIMITS) == "output"
    for bad in ("/", "/etc", "..", "code//", "code/../x", "/workspace//x"):
        with pytest.raises(InvalidArgument) as refused:
            check_directory(bad, LIMITS)
        assert refused.value.field == "directory", bad


def test_content_is_at_most_the_per_file_cap():
    assert check_content(b"x" * 10, LIMITS) == b"x" * 10
    with pytest.raises(InvalidArgument) as refused:
        check_content(b"x" * 11, LIMITS)
    assert refused.value.field == "content"


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("PACKAGE_NOT_FOUND", grpc.StatusCode.FAILED_PRECONDITION),
        ("EGRESS_DENIED", grpc.StatusCode.FAILED_PRECONDITION),
        ("TIMEOUT", grpc.StatusCode.FAILED_PRECONDITION),
        ("MEMORY_LIMIT", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("OUTPUT_LIMIT", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("SPAWNER_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_an_install_failure_keeps_its_reason_through_the_mesh(reason, code):
    status = install_failure_status(reason, "package not found: no such thing")
    assert status.code == code.value[0]
    assert status.message == "packages: package not found: no such thing"
    assert install_failure_of(status) == (reason, "package not found: no such thing")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        precondition = error_details_pb2.PreconditionFailure()
        assert any(d.Unpack(precondition) for d in status.details)
        assert (precondition.violations[0].type, precondition.violations[0].subject) == (reason, "packages")


def test_other_statuses_are_no_install_failure():
    assert install_failure_of(None) is None
    assert install_failure_of(no_free_slot_status("busy")) is None
