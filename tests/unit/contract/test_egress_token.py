"""services.common.contract.egress_token: mint and verify per-execution proxy tokens."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.contract.egress_token import (
    Identity,
    Refusal,
    mint,
    parse_proxy_authorization,
    proxy_authorization,
    verify,
)

SECRET = b"s" * 32
NOW = 1_800_000_000


def test_good_token():
    token = mint(SECRET, "exec-1", "tenant-a", 60, now=NOW)
    identity = verify(SECRET, "exec-1", token, now=NOW + 59)
    assert identity == Identity("exec-1", "tenant-a", NOW + 60)


def test_str_secret_equals_bytes_secret():
    token = mint(SECRET.decode(), "exec-1", "tenant-a", 60, now=NOW)
    assert isinstance(verify(SECRET, "exec-1", token, now=NOW), Identity)


def test_wrong_secret():
    token = mint(SECRET, "exec-1", "tenant-a", 60, now=NOW)
    assert verify(b"t" * 32, "exec-1", token, now=NOW) == Refusal.BAD_SIGNATURE


def test_expired():
    token = mint(SECRET, "exec-1", "tenant-a", 60, now=NOW)
    assert verify(SECRET, "exec-1", token, now=NOW + 60) == Refusal.EXPIRED


def test_another_executions_token():
    token = mint(SECRET, "exec-1", "tenant-a", 60, now=NOW)
    assert verify(SECRET, "exec-2", token, now=NOW) == Refusal.BAD_SIGNATURE


def test_tampered_tenant_or_expiry():
    token = mint(SECRET, "exec-1", "tenant-a", 60, now=NOW)
    version, tenant, expiry, mac = token.split(".")
    assert verify(SECRET, "exec-1", f"{version}.tenant-b.{expiry}.{mac}", now=NOW) == Refusal.BAD_SIGNATURE
    assert verify(SECRET, "exec-1", f"{version}.{tenant}.{int(expiry) + 3600}.{mac}", now=NOW) == Refusal.BAD_SIGNATURE


@pytest.mark.parametrize(
    "username, token, reason",
    [
        (None, None, Refusal.MISSING),
        ("", "", Refusal.MISSING),
        ("exec-1", "", Refusal.MALFORMED),
        ("", "v1.t.1.x", Refusal.MALFORMED),
        ("exec-1", "garbage", Refusal.MALFORMED),
        ("exec-1", "v2.tenant-a.1800000060." + "A" * 43, Refusal.MALFORMED),
        ("exec-1", "v1.tenant-a.soon." + "A" * 43, Refusal.MALFORMED),
        ("exec-1", "v1.tenant-a.1800000060." + "A" * 42, Refusal.MALFORMED),
        ("exec-1", "v1.ten|ant.1800000060." + "A" * 43, Refusal.MALFORMED),
        ("exec|1", "v1.tenant-a.1800000060." + "A" * 43, Refusal.MALFORMED),
        ("exec-1\n", "v1.tenant-a.1800000060." + "A" * 43, Refusal.MALFORMED),
        ("exec-1", "v1.tenant-a\n.1800000060." + "A" * 43, Refusal.MALFORMED),
        ("exec-1", "v1.tenant-a.1800000060\n." + "A" * 43, Refusal.MALFORMED),
        ("exec-1", "v1.tenant-a.1800000060." + "A" * 43 + "\n", Refusal.MALFORMED),
        ("exec-1", "v1.tenant-a.1800000060." + "A" * 43 + ".x", Refusal.MALFORMED),
        ("exec-1", "v1." + "a" * 300, Refusal.MALFORMED),
        ("exec-1", "v1.tenant-a.1800000060." + "A" * 43, Refusal.BAD_SIGNATURE),
    ],
)
def test_malformed(username, token, reason):
    assert verify(SECRET, username, token, now=NOW) == reason


@pytest.mark.parametrize(
    "args",
    [
        ("bad id", "t", 60),
        ("e", "bad|tenant", 60),
        ("e", "t", 0),
        ("e" * 65, "t", 60),
        ("e\n", "t", 60),
        ("e", "t\n", 60),
    ],
)
def test_mint_validates(args):
    with pytest.raises(ValueError):
        mint(SECRET, *args, now=NOW)


def test_short_secret_refused():
    with pytest.raises(ValueError):
        mint(b"short", "e", "t", 60)
    with pytest.raises(ValueError):
        verify(b"short", "e", "x")


def test_proxy_authorization_round_trip():
    token = mint(SECRET, "exec-1", "tenant-a", 60, now=NOW)
    assert parse_proxy_authorization(proxy_authorization("exec-1", token)) == ("exec-1", token)


@pytest.mark.parametrize(
    "header, reason",
    [
        (None, Refusal.MISSING),
        ("  ", Refusal.MISSING),
        ("Bearer abc", Refusal.MALFORMED),
        ("Basic", Refusal.MALFORMED),
        ("Basic !!!", Refusal.MALFORMED),
        ("Basic " + base64.b64encode(b"no-colon").decode(), Refusal.MALFORMED),
        ("Basic " + base64.b64encode("\u00e9:x".encode()).decode(), Refusal.MALFORMED),
        ("Basic " + "A" * 2000, Refusal.MALFORMED),
    ],
)
def test_proxy_authorization_malformed(header, reason):
    assert parse_proxy_authorization(header) == reason


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=120))
def test_random_credentials_never_verify(username, token):
    assert not isinstance(verify(SECRET, username, token, now=NOW), Identity)
