"""The syntax of ids and tenant names: one rule for every id on the wire."""

from __future__ import annotations

import re

from services.common.contract.errors import InvalidArgument

# \Z, not $: "$" also matches before a trailing newline.
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
ID_RULE = "must match [A-Za-z0-9_-]{1,64}"


def check_id(field: str, value: str) -> str:
    """`value` if it is a well-formed id; InvalidArgument naming `field` if not."""
    if not value:
        raise InvalidArgument(field, "required")
    if not ID_RE.match(value):
        raise InvalidArgument(field, ID_RULE)
    return value
