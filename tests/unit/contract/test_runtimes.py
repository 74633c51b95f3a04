"""Runtime names and image variants (services/common/contract/runtimes.py),
and how both requests carry `variant` through the shared program check."""

from __future__ import annotations

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2
from sandbox.spawner.v1 import spawner_pb2
from services.common.contract.errors import InvalidArgument
from services.common.contract.limits import RequestLimits
from services.common.contract.requests import check_program
from services.common.contract.runtimes import DATASCIENCE, RUNTIME_NAMES, check_variant, runtime_name

REQUEST_TYPES = [control_pb2.ExecuteRequest, spawner_pb2.ExecuteRequest]


def test_runtime_names():
    assert runtime_name("python") == "python"
    assert runtime_name("node", "") == "node"
    assert runtime_name("python", DATASCIENCE) == "python-datascience"
    assert set(RUNTIME_NAMES) == {"python", "node", "python-datascience"}


def test_offered_variants_pass():
    assert check_variant("python", "") == ""
    assert check_variant("node", "") == ""
    assert check_variant("python", "datascience") == "datascience"


@pytest.mark.parametrize(
    ("language", "variant"),
    [
        ("node", "datascience"),  # Python only
        ("python", "DataScience"),  # names are exact
        ("python", "datascience "),
        ("python", "gpu"),
        ("python", "python-datascience"),  # a runtime name, not a variant
        ("ruby", "datascience"),
    ],
)
def test_other_variants_are_refused_naming_the_field(language, variant):
    with pytest.raises(InvalidArgument) as refused:
        check_variant(language, variant)
    assert refused.value.field == "variant"
    assert repr(variant) in refused.value.description


def test_refusal_says_what_the_language_offers():
    with pytest.raises(InvalidArgument) as node:
        check_variant("node", "datascience")
    assert "offers: none" in node.value.description
    with pytest.raises(InvalidArgument) as python:
        check_variant("python", "x")
    assert "'datascience'" in python.value.description


def _request(message_type, **fields):
    values = dict(language=common.LANGUAGE_PYTHON, files=[common.File(path="main.py", content=b"1")], entry="main.py")
    values.update(fields)
    return message_type(**values)


@pytest.mark.parametrize("message_type", REQUEST_TYPES)
def test_both_requests_carry_the_variant(message_type):
    assert check_program(_request(message_type), RequestLimits()).variant == ""
    assert check_program(_request(message_type, variant="datascience"), RequestLimits()).variant == "datascience"


@pytest.mark.parametrize("message_type", REQUEST_TYPES)
def test_both_requests_refuse_a_variant_the_language_lacks(message_type):
    request = _request(
        message_type,
        language=common.LANGUAGE_NODE,
        files=[common.File(path="main.js", content=b"1")],
        entry="main.js",
        variant="datascience",
    )
    with pytest.raises(InvalidArgument) as refused:
        check_program(request, RequestLimits())
    assert refused.value.field == "variant"


@pytest.mark.parametrize("message_type", REQUEST_TYPES)
def test_an_earlier_field_is_named_first(message_type):
    with pytest.raises(InvalidArgument) as refused:
        check_program(_request(message_type, stdin=b"x" * 5, variant="nope"), RequestLimits(max_stdin_bytes=4))
    assert refused.value.field == "stdin"
