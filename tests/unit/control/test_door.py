"""Control's door (ExecutionService.check): the mesh's request rules, judged
before anything is recorded, with the field named."""

from __future__ import annotations

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from services.common.contract.errors import InvalidArgument
from services.common.contract.limits import RequestLimits
from services.control.config import ExecutionLimits
from services.control.executions.service import ExecutionService

LIMITS = RequestLimits(max_files=2, max_file_bytes=8, max_total_file_bytes=12, max_stdin_bytes=4, max_packages=1)
# check() needs nothing but the limits: no store, no relay.
DOOR = ExecutionService(ExecutionLimits(1000, 5000, 64, LIMITS), *(None,) * 9)


def _request(**fields) -> pb.ExecuteRequest:
    values = dict(language=common.LANGUAGE_PYTHON, files=[common.File(path="main.py", content=b"1")], entry="main.py")
    values.update(fields)
    return pb.ExecuteRequest(**values)


def test_a_good_request_is_admitted_with_its_timeout():
    admission = DOOR.check(_request(execution_id="ok-1", group_id="s", limits=common.Limits(timeout_ms=0)))
    assert (admission.execution_id, admission.group_id, admission.timeout_ms) == ("ok-1", "s", 1000)
    assert DOOR.check(_request()).execution_id.startswith("ex-")


@pytest.mark.parametrize(
    "fields, field",
    [
        (dict(execution_id="a b"), "execution_id"),
        (dict(group_id="a/b"), "group_id"),
        (dict(language=common.LANGUAGE_UNSPECIFIED), "language"),
        (dict(files=[common.File(path="../x.py")], entry="../x.py"), "files[0].path"),
        (dict(files=[common.File(path="main.py", content=b"x" * 9)]), "files[0].content"),
        (dict(files=[common.File(path=f"{i}.py", content=b"x" * 7) for i in range(2)], entry="0.py"), "files"),
        (dict(stdin=b"12345"), "stdin"),
        (dict(packages=[common.Package(name="six"), common.Package(name="idna")]), "packages"),
        (dict(env={"SANDBOX_X": "1"}), 'env["SANDBOX_X"]'),
        (dict(entry="", steps=[common.Step(path="nope.py")]), "steps[0].path"),
        (dict(limits=common.Limits(timeout_ms=5001)), "limits.timeout_ms"),
        (dict(variant="gpu"), "variant"),
        (
            dict(
                language=common.LANGUAGE_NODE,
                files=[common.File(path="main.js")],
                entry="main.js",
                variant="datascience",
            ),
            "variant",
        ),
    ],
)
def test_refused_at_the_door(fields, field):
    with pytest.raises(InvalidArgument) as refused:
        DOOR.check(_request(**fields))
    assert refused.value.field == field


def test_the_variant_is_admitted_with_the_request():
    assert DOOR.check(_request()).variant == ""
    assert DOOR.check(_request(variant="datascience")).variant == "datascience"
