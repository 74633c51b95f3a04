"""A doctor check's outcome, and the report of all of them."""

from __future__ import annotations

import dataclasses
from typing import Any

PASS, WARN, FAIL = "pass", "warn", "fail"
# The longest name ("control→spawner"): the details line up.
NAME_WIDTH = 15


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == FAIL for c in checks) else 0


def format_check(check: Check) -> str:
    line = f"{check.status:<4}  {check.name:<{NAME_WIDTH}} {check.detail}"
    if check.status != PASS and check.fix:
        line += f"\n      fix: {check.fix}"
    return line


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {"ok": exit_code(checks) == 0, "checks": [dataclasses.asdict(c) for c in checks]}
