"""services.egress.policy.check_request: what a request may do (GET or HEAD,
no body, no upgrade)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.egress.policy import ALLOWED_METHODS, Reason, check_request


@pytest.mark.parametrize(
    "method, headers",
    [
        ("GET", []),
        ("HEAD", []),
        ("GET", [("Host", "pkgs.test.internal"), ("Accept", "*/*")]),
        ("GET", [("Content-Length", "0")]),
        ("GET", [("content-length", " 0 ")]),
        ("HEAD", [("Connection", "keep-alive")]),
    ],
)
def test_reads_allowed(method, headers):
    decision = check_request(method, headers)
    assert decision and decision.reason == Reason.ALLOWED


@pytest.mark.parametrize(
    "method, headers, reason",
    [
        ("POST", [], Reason.METHOD_NOT_ALLOWED),
        ("PUT", [("Content-Length", "0")], Reason.METHOD_NOT_ALLOWED),
        ("PATCH", [], Reason.METHOD_NOT_ALLOWED),
        ("DELETE", [], Reason.METHOD_NOT_ALLOWED),
        ("OPTIONS", [], Reason.METHOD_NOT_ALLOWED),
        ("CONNECT", [], Reason.METHOD_NOT_ALLOWED),
        ("TRACE", [], Reason.METHOD_NOT_ALLOWED),
        ("get", [], Reason.METHOD_NOT_ALLOWED),
        ("GET ", [], Reason.METHOD_NOT_ALLOWED),
        ("", [], Reason.METHOD_NOT_ALLOWED),
        ("GET", [("Content-Length", "5")], Reason.REQUEST_BODY_REFUSED),
        ("GET", [("CONTENT-LENGTH", "1")], Reason.REQUEST_BODY_REFUSED),
        ("GET", [("Content-Length", "0"), ("Content-Length", "7")], Reason.REQUEST_BODY_REFUSED),
        ("GET", [("Content-Length", "00x")], Reason.REQUEST_BODY_REFUSED),
        ("GET", [("Content-Length", "")], Reason.REQUEST_BODY_REFUSED),
        ("HEAD", [("Transfer-Encoding", "chunked")], Reason.REQUEST_BODY_REFUSED),
        ("GET", [("transfer-encoding", "identity")], Reason.REQUEST_BODY_REFUSED),
        ("GET", [("Upgrade", "websocket"), ("Connection", "Upgrade")], Reason.UPGRADE_REFUSED),
        ("GET", [("upgrade", "h2c")], Reason.UPGRADE_REFUSED),
        ("GET", [("Upgrade", "")], Reason.UPGRADE_REFUSED),
    ],
)
def test_writes_bodies_and_upgrades_refused(method, headers, reason):
    decision = check_request(method, headers)
    assert not decision and decision.reason == reason


def test_refused_method_recorded_cut_short():
    decision = check_request("X" * 1000, [])
    assert decision.reason == Reason.METHOD_NOT_ALLOWED and decision.value == "X" * 16


@given(st.text(max_size=20))
def test_only_get_and_head_ever_pass(method):
    assert bool(check_request(method, [])) == (method in ALLOWED_METHODS)


@given(st.sampled_from(sorted(ALLOWED_METHODS)), st.integers(min_value=1, max_value=2**64))
def test_any_announced_body_refused(method, length):
    assert check_request(method, [("Content-Length", str(length))]).reason == Reason.REQUEST_BODY_REFUSED
