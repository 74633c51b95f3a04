"""Size and count limits of a request: one set of numbers for the whole mesh,
read from MESH_* environment variables, and the largest message they allow.

Control refuses at its door what is over them, before anything is recorded,
and the spawner refuses it again, so whatever control accepts a spawner can
run. Each service's settings embed them as `limits`; both servers take no
gRPC message larger than `max_message_bytes(limits)`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.contract.packages import MAX_NAME_LENGTH, MAX_VERSION_LENGTH

MIB = 1024 * 1024
KIB = 1024

# Fixed by the protocol, not configurable.
MAX_STEPS = 10
MAX_ARG_BYTES = 4096
# The shortest timeout an execution may ask for.
MIN_TIMEOUT_MS = 100

DEFAULT_MAX_PACKAGES = 50
# The most an operator may raise max_packages to.
MAX_PACKAGES_CEILING = 200


class RequestLimits(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MESH_", frozen=True, use_attribute_docstrings=True)

    # Files of a request (and, separately, its prior outputs).
    max_files: int = Field(default=100, ge=1)
    """Files per request (and prior outputs per request)."""
    max_file_bytes: int = Field(default=1 * MIB, ge=1)
    """Bytes per file."""
    max_total_file_bytes: int = Field(default=10 * MIB, ge=1)
    """Bytes of all files of a request."""
    max_path_length: int = Field(default=255, ge=1)
    """Bytes per path."""
    max_stdin_bytes: int = Field(default=1 * MIB, ge=0)
    """Bytes of stdin."""
    max_args: int = Field(default=64, ge=0)
    """Arguments per program."""
    max_env: int = Field(default=64, ge=0)
    """Environment variables per request."""
    max_env_bytes: int = Field(default=64 * KIB, ge=0)
    """Bytes of all names and values."""
    max_packages: int = Field(default=DEFAULT_MAX_PACKAGES, ge=0, le=MAX_PACKAGES_CEILING)
    """Packages per request (at most 200)."""


# Protobuf's framing of one element of a repeated or map field together with
# the fields inside it (tags and length prefixes). A File takes at most
# 1 + 5 for the element, 1 + 2 for its path and 1 + 5 for its content.
ELEMENT_FRAMING_BYTES = 16
# Everything of a request that no limit counts: ids, tenant, language,
# entry, the numeric limits, install options, the network flag.
FIXED_FIELDS_BYTES = 4 * KIB


def files_field_bytes(limits: RequestLimits) -> int:
    """The largest `files` (or `prior_outputs`) field of a valid request."""
    return limits.max_total_file_bytes + limits.max_files * (limits.max_path_length + ELEMENT_FRAMING_BYTES)


def programs_field_bytes(limits: RequestLimits) -> int:
    """The largest `steps` field: every step with its path and all its
    arguments (more than `entry` with `args`, which exclude steps)."""
    one_arg = MAX_ARG_BYTES + ELEMENT_FRAMING_BYTES
    one_step = limits.max_path_length + ELEMENT_FRAMING_BYTES + limits.max_args * one_arg
    return MAX_STEPS * one_step


def env_field_bytes(limits: RequestLimits) -> int:
    return limits.max_env_bytes + limits.max_env * ELEMENT_FRAMING_BYTES


def packages_field_bytes(limits: RequestLimits) -> int:
    return limits.max_packages * (MAX_NAME_LENGTH + MAX_VERSION_LENGTH + ELEMENT_FRAMING_BYTES)


def max_message_bytes(limits: RequestLimits) -> int:
    """The largest message a valid request can be: a spawner's
    ExecuteRequest with every part at its limit, files and prior outputs
    both. Control's requests carry no prior outputs, so they stay below it.

    Control and the spawner both take no larger gRPC message; a larger one
    is refused by gRPC (RESOURCE_EXHAUSTED) before it is even parsed.
    """
    return (
        2 * files_field_bytes(limits)
        + limits.max_stdin_bytes
        + ELEMENT_FRAMING_BYTES
        + env_field_bytes(limits)
        + programs_field_bytes(limits)
        + packages_field_bytes(limits)
        + FIXED_FIELDS_BYTES
    )
