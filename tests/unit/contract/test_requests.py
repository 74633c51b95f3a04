"""The rules control and the spawner share (services/common/contract/requests.py):
the same request is judged the same way whichever message carries it."""

from __future__ import annotations

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2
from sandbox.spawner.v1 import spawner_pb2
from services.common.contract.errors import InvalidArgument
from services.common.contract.limits import MAX_ARG_BYTES, MAX_STEPS, MIN_TIMEOUT_MS, RequestLimits
from services.common.contract.requests import Package, Step, check_program, check_timeout_ms

LIMITS = RequestLimits(
    max_files=3,
    max_file_bytes=10,
    max_total_file_bytes=20,
    max_path_length=12,
    max_stdin_bytes=5,
    max_args=2,
    max_env=2,
    max_env_bytes=12,
    max_packages=2,
)
F = common.File
REQUEST_TYPES = [control_pb2.ExecuteRequest, spawner_pb2.ExecuteRequest]


def _request(message_type, **fields):
    values = dict(language=common.LANGUAGE_PYTHON, files=[F(path="main.py", content=b"print(1)")], entry="main.py")
    values.update(fields)
    return message_type(**values)


@pytest.mark.parametrize("message_type", REQUEST_TYPES)
def test_a_request_at_every_limit_passes(message_type):
    request = _request(
        message_type,
        files=[F(path="a" * 9 + ".py", content=b"x" * 10), F(path="b.py", content=b"y" * 10)],
        entry="a" * 9 + ".py",
        packages=[common.Package(name="six"), common.Package(name="idna", version="==3.7")],
        env={"ABCDE": "12345", "X": ""},
        stdin=b"12345",
        args=["1", "é" * (MAX_ARG_BYTES // 2)],
    )
    program = check_program(request, LIMITS)
    assert program.language == "python"
    assert program.steps == (Step("a" * 9 + ".py", ("1", "é" * (MAX_ARG_BYTES // 2))),)
    assert program.packages == (Package("six"), Package("idna", "==3.7"))
    assert (program.env, program.stdin) == ({"ABCDE": "12345", "X": ""}, b"12345")


OVER = [
    ("files-count", dict(files=[F(path=f"{i}.py") for i in range(4)], entry="0.py"), "files"),
    ("file-bytes", dict(files=[F(path="main.py", content=b"x" * 11)]), "files[0].content"),
    ("files-total", dict(files=[F(path=f"{i}.py", content=b"x" * 10) for i in range(3)], entry="0.py"), "files"),
    ("path-length", dict(files=[F(path="a" * 10 + ".py")], entry="a" * 10 + ".py"), "files[0].path"),
    ("path-collision", dict(files=[F(path="main.py"), F(path="MAIN.py")]), "files"),
    ("steps-count", dict(entry="", steps=[common.Step(path="main.py")] * (MAX_STEPS + 1)), "steps"),
    ("args-count", dict(args=["1", "2", "3"]), "args"),
    ("arg-bytes", dict(args=["x" * (MAX_ARG_BYTES + 1)]), "args[0]"),
    ("step-args", dict(entry="", steps=[common.Step(path="main.py", args=["1", "2", "3"])]), "steps[0].args"),
    ("packages-count", dict(packages=[common.Package(name=n) for n in ("a", "b", "c")]), "packages"),
    (
        "package-twice",
        dict(packages=[common.Package(name="Foo_Bar"), common.Package(name="foo.bar")]),
        "packages[1].name",
    ),
    (
        "package-version-length",
        dict(packages=[common.Package(name="six", version="==1" + " " * 2000)]),
        "packages[0].version",
    ),
    ("env-count", dict(env={"A": "", "B": "", "C": ""}), "env"),
    ("env-bytes", dict(env={"ABCDEF": "1234567"}), "env"),
    ("env-reserved", dict(env={"http_proxy": "x"}), 'env["http_proxy"]'),
    ("stdin", dict(stdin=b"123456"), "stdin"),
]


@pytest.mark.parametrize("message_type", REQUEST_TYPES)
@pytest.mark.parametrize(("fields", "field"), [pytest.param(f, n, id=i) for i, f, n in OVER])
def test_one_step_over_a_limit_names_the_field(message_type, fields, field):
    with pytest.raises(InvalidArgument) as refused:
        check_program(_request(message_type, **fields), LIMITS)
    assert refused.value.field == field


def test_timeout():
    assert check_timeout_ms(0, default=1000, maximum=5000) == 1000
    assert check_timeout_ms(MIN_TIMEOUT_MS, default=1000, maximum=5000) == MIN_TIMEOUT_MS
    assert check_timeout_ms(5000, default=1000, maximum=5000) == 5000
    for bad in (MIN_TIMEOUT_MS - 1, 5001):
        with pytest.raises(InvalidArgument) as refused:
            check_timeout_ms(bad, default=1000, maximum=5000)
        assert refused.value.field == "limits.timeout_ms"
        assert f"{MIN_TIMEOUT_MS} and 5000" in refused.value.description
