"""One set of request limits for the mesh, and the largest message they allow
(services/common/contract/limits.py)."""

from __future__ import annotations

import pydantic
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2
from sandbox.spawner.v1 import spawner_pb2
from services.common.contract.limits import (
    MAX_ARG_BYTES,
    MAX_PACKAGES_CEILING,
    MAX_STEPS,
    MIB,
    RequestLimits,
    max_message_bytes,
)
from services.common.contract.packages import MAX_VERSION_LENGTH
from services.common.contract.requests import check_files, check_program


def test_defaults():
    limits = RequestLimits()
    assert (limits.max_files, limits.max_file_bytes, limits.max_total_file_bytes) == (
        100,
        1024 * 1024,
        10 * 1024 * 1024,
    )
    assert (limits.max_path_length, limits.max_args, limits.max_env, limits.max_packages) == (255, 64, 64, 50)


def test_read_from_mesh_variables(monkeypatch):
    monkeypatch.setenv("MESH_MAX_FILES", "7")
    monkeypatch.setenv("MESH_MAX_PACKAGES", "3")
    assert (RequestLimits().max_files, RequestLimits().max_packages) == (7, 3)


def test_out_of_range_is_refused(monkeypatch):
    monkeypatch.setenv("MESH_MAX_PACKAGES", "201")
    with pytest.raises(pydantic.ValidationError):
        RequestLimits()


MAX_ENV_NAME_LENGTH = 128
SEGMENT = 200
# Eight clauses of 64-character versions, padded with spaces to the length cap.
LONGEST_PIP_VERSION = ",".join(["==" + "1" * 64] * 8).ljust(MAX_VERSION_LENGTH)


def _longest_pip_name(index: int) -> str:
    return f"p{index:03d}".ljust(100, "x") + "[" + "e" * 100 + "]"


def _longest_path(index: int, length: int) -> str:
    """`length` characters, a '/' every SEGMENT characters (a name is at most 255 bytes)."""
    path = list(f"{index:03d}".ljust(length, "f"))
    for position in range(SEGMENT, length - 1, SEGMENT):
        path[position] = "/"
    return "".join(path)


def _largest_spawner_request(limits: RequestLimits) -> spawner_pb2.ExecuteRequest:
    """A valid spawner request with every part at its limit."""
    per_file = limits.max_total_file_bytes // limits.max_files
    files = [
        common.File(path=_longest_path(i, limits.max_path_length), content=b"x" * per_file)
        for i in range(limits.max_files)
    ]
    args = ["a" * MAX_ARG_BYTES] * limits.max_args
    per_variable = limits.max_env_bytes // limits.max_env
    name_length = min(MAX_ENV_NAME_LENGTH, per_variable // 2)
    env = {f"V{i:03d}".ljust(name_length, "N"): "v" * (per_variable - name_length) for i in range(limits.max_env)}
    return spawner_pb2.ExecuteRequest(
        execution_id="e" * 64,
        tenant="t" * 64,
        language=common.LANGUAGE_PYTHON,
        files=files,
        steps=[common.Step(path=files[0].path, args=args)] * MAX_STEPS,
        packages=[
            common.Package(name=_longest_pip_name(i), version=LONGEST_PIP_VERSION) for i in range(limits.max_packages)
        ],
        limits=common.Limits(timeout_ms=2**32 - 1, memory_bytes=2**64 - 1, cpus=1e300),
        env=env,
        stdin=b"s" * limits.max_stdin_bytes,
        prior_outputs=files,
        install=spawner_pb2.InstallOptions(allow_sdist=True, allow_install_scripts=True),
        network=True,
    )


@pytest.mark.parametrize(
    "limits",
    [
        RequestLimits(),
        RequestLimits(
            max_files=3,
            max_file_bytes=10,
            max_total_file_bytes=30,
            max_path_length=8,
            max_stdin_bytes=0,
            max_args=0,
            max_env=1,
            max_env_bytes=8,
            max_packages=0,
        ),
        RequestLimits(
            max_files=200,
            max_total_file_bytes=30 * MIB,
            max_file_bytes=2 * MIB,
            max_path_length=1000,
            max_args=200,
            max_env=500,
            max_env_bytes=MIB,
            max_packages=MAX_PACKAGES_CEILING,
        ),
    ],
    ids=["defaults", "small", "large"],
)
def test_the_largest_valid_request_fits_the_message_limit(limits):
    request = _largest_spawner_request(limits)
    check_program(request, limits)
    check_files("prior_outputs", request.prior_outputs, limits, required=False)
    assert request.ByteSize() <= max_message_bytes(limits)
    # Control's request carries no prior outputs: it stays below the same bound.
    control_request = control_pb2.ExecuteRequest(
        execution_id=request.execution_id,
        group_id="s" * 64,
        language=request.language,
        files=request.files,
        steps=request.steps,
        packages=request.packages,
        limits=request.limits,
        env=request.env,
        stdin=request.stdin,
    )
    assert control_request.ByteSize() < max_message_bytes(limits)


def test_the_message_limit_stays_far_below_an_oversized_request():
    limits = RequestLimits()
    # The attack of issue 11 sent 40 MiB: refused on size with the defaults.
    assert max_message_bytes(limits) < 25 * MIB
