"""What control and the spawner both check of a session (docs/sessions.md):
its lifetimes and the size of a call's code."""

from __future__ import annotations

from services.common.contract.errors import InvalidArgument

# The longest a session may live; how long it may be idle when not asked.
MAX_LIFETIME_SECONDS = 24 * 3600
DEFAULT_IDLE_SECONDS = 15 * 60
# A call's code; node runs it as `node -e CODE`, one argument (MAX_ARG_STRLEN).
MAX_CODE_BYTES = 1024 * 1024
MAX_NODE_CODE_BYTES = 128 * 1024 - 1


def check_lifetimes(idle_seconds: int, lifetime_seconds: int) -> tuple[int, int]:
    """(idle timeout, maximum lifetime) in seconds, 0 meaning the defaults."""
    lifetime = lifetime_seconds or MAX_LIFETIME_SECONDS
    if lifetime > MAX_LIFETIME_SECONDS:
        raise InvalidArgument("max_lifetime_seconds", f"must be at most {MAX_LIFETIME_SECONDS} (0 for that)")
    idle = idle_seconds or min(DEFAULT_IDLE_SECONDS, lifetime)
    if idle > lifetime:
        raise InvalidArgument("idle_timeout_seconds", "must be at most max_lifetime_seconds")
    return idle, lifetime


def check_code(code: str, language: str) -> str:
    limit = MAX_NODE_CODE_BYTES if language == "node" else MAX_CODE_BYTES
    if len(code.encode()) > limit:
        raise InvalidArgument("code", f"must be at most {limit} bytes")
    if language == "node" and "\0" in code:
        raise InvalidArgument("code", "must not contain a NUL character (node runs it as an argument)")
    return code
