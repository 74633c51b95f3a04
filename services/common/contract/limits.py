"""Size and count limits of a request: one set of numbers for the whole mesh,
read from MESH_* environment variables.

Control holds what it stores and relays to these, and the spawner refuses
what is over them, so whatever control accepts a spawner can run. Each
service's settings embed them as `limits`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
KIB = 1024

# Fixed by the protocol, not configurable.
MAX_STEPS = 10
MAX_ARG_BYTES = 4096

DEFAULT_MAX_PACKAGES = 50
# The most an operator may raise max_packages to.
MAX_PACKAGES_CEILING = 200


class RequestLimits(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MESH_", frozen=True)

    # Files of a request (and, separately, its prior outputs).
    max_files: int = Field(default=100, ge=1)
    max_file_bytes: int = Field(default=1 * MIB, ge=1)
    max_total_file_bytes: int = Field(default=10 * MIB, ge=1)
    max_path_length: int = Field(default=255, ge=1)
    max_stdin_bytes: int = Field(default=1 * MIB, ge=0)
    # Arguments per program (entry or step).
    max_args: int = Field(default=64, ge=0)
    max_env: int = Field(default=64, ge=0)
    # Names and values of all environment variables together.
    max_env_bytes: int = Field(default=64 * KIB, ge=0)
    max_packages: int = Field(default=DEFAULT_MAX_PACKAGES, ge=0, le=MAX_PACKAGES_CEILING)
