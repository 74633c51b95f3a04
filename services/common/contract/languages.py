"""The languages a request may ask for, by their short names."""

from __future__ import annotations

from typing import cast

from sandbox.common.v1 import execution_pb2
from services.common.contract.errors import InvalidArgument

LANGUAGES: dict[int, str] = {
    execution_pb2.LANGUAGE_PYTHON: "python",
    execution_pb2.LANGUAGE_NODE: "node",
}


def check_language(value: int) -> str:
    """The short name of a `Language` enum value; InvalidArgument if unknown."""
    name = LANGUAGES.get(value)
    if name is None:
        raise InvalidArgument("language", "must be LANGUAGE_PYTHON or LANGUAGE_NODE")
    return name


def as_language(value: int) -> execution_pb2.Language:
    """A language as stored (a plain int column) typed as the proto enum, for
    building messages; the value itself is unchanged."""
    return cast(execution_pb2.Language, value)
