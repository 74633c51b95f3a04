import pytest

from services.common.auth import AuthError, Verifier, sign

SECRET = b"s" * 32
NOW = 1_800_000_000_000


def test_valid_signature_passes_once():
    verifier = Verifier(SECRET)
    header = sign(SECRET, "/svc/M", b"body", now_ms=NOW)
    verifier.verify("/svc/M", b"body", header, now_ms=NOW + 10)
    with pytest.raises(AuthError, match="replayed"):
        verifier.verify("/svc/M", b"body", header, now_ms=NOW + 20)


@pytest.mark.parametrize(
    "header, method, body, now, reason",
    [
        (None, "/svc/M", b"body", NOW, "missing"),
        ("", "/svc/M", b"body", NOW, "missing"),
        ("v1:1:abcdefabcdefabcdef:00", "/svc/M", b"body", NOW, "malformed"),
        ("v1:notanumber:abcdefabcdefabcdef:00", "/svc/M", b"body", NOW, "malformed"),
        ("v1:1:short:00", "/svc/M", b"body", NOW, "malformed"),
        (sign(b"other", "/svc/M", b"body", now_ms=NOW), "/svc/M", b"body", NOW, "bad signature"),
        (sign(SECRET, "/svc/Other", b"body", now_ms=NOW), "/svc/M", b"body", NOW, "bad signature"),
        (sign(SECRET, "/svc/M", b"other body", now_ms=NOW), "/svc/M", b"body", NOW, "bad signature"),
        (sign(SECRET, "/svc/M", b"body", now_ms=NOW), "/svc/M", b"body", NOW + 61_000, "expired"),
        (sign(SECRET, "/svc/M", b"body", now_ms=NOW + 61_000), "/svc/M", b"body", NOW, "expired"),
    ],
    ids=["none", "empty", "version", "timestamp", "nonce", "secret", "method", "body", "old", "future"],
)
def test_refused(header, method, body, now, reason):
    with pytest.raises(AuthError, match=reason):
        Verifier(SECRET).verify(method, body, header, now_ms=now)


def test_nonces_are_forgotten_after_the_window():
    verifier = Verifier(SECRET, window_seconds=1)
    for i in range(100):
        verifier.verify("/m", b"", sign(SECRET, "/m", b"", now_ms=NOW + i * 100), now_ms=NOW + i * 100)
    assert len(verifier._seen) <= 11


def test_replay_cache_is_bounded():
    verifier = Verifier(SECRET, max_nonces=3)
    for _ in range(3):
        verifier.verify("/m", b"", sign(SECRET, "/m", b"", now_ms=NOW), now_ms=NOW)
    with pytest.raises(AuthError, match="too many"):
        verifier.verify("/m", b"", sign(SECRET, "/m", b"", now_ms=NOW), now_ms=NOW)


def test_empty_secret_is_refused():
    with pytest.raises(ValueError):
        Verifier(b"")
