"""Setting types every service reads the same way from its environment.

A list-valued setting is written as a comma-separated string: entries are
stripped of surrounding whitespace, empty ones are dropped, and a newline
counts as a comma (so a long list can be written one entry per line).
`EGRESS_ALLOW_HOSTS=" a.example, *.b.example ,"` is `("a.example", "*.b.example")`.
Maps (tenant keys, quotas) are JSON objects; nothing list-valued is JSON.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

LIST_SEPARATOR = ","


def split_comma_list(value: str) -> tuple[str, ...]:
    entries = value.replace("\n", LIST_SEPARATOR).split(LIST_SEPARATOR)
    return tuple(entry.strip() for entry in entries if entry.strip())


def _from_environment(value: object) -> object:
    return split_comma_list(value) if isinstance(value, str) else value


# NoDecode: pydantic-settings would otherwise parse the variable as JSON.
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_from_environment)]
