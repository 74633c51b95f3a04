"""The one id rule (services/common/contract/ids.py)."""

from __future__ import annotations

import pytest

from services.common.contract.errors import InvalidArgument
from services.common.contract.ids import ID_RE, check_id


@pytest.mark.parametrize("value", ["a", "exec-1", "acme_co", "A" * 64, "0-_Z"])
def test_accepted(value):
    assert check_id("execution_id", value) == value
    assert ID_RE.match(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("abc\n", id="trailing-newline"),
        pytest.param("a" * 65, id="too-long"),
        pytest.param("a b", id="space"),
        pytest.param("a.b", id="dot"),
        pytest.param("a/b", id="slash"),
        pytest.param("\nabc", id="leading-newline"),
        pytest.param("é", id="non-ascii"),
    ],
)
def test_refused(value):
    with pytest.raises(InvalidArgument) as refused:
        check_id("tenant", value)
    assert refused.value.field == "tenant"
    assert refused.value.description == "must match [A-Za-z0-9_-]{1,64}"
    assert not ID_RE.match(value)


def test_empty_is_required():
    with pytest.raises(InvalidArgument, match="session_id: required"):
        check_id("session_id", "")
