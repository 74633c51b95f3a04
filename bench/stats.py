"""Pure helpers of the benchmarks: percentiles, ratios, target verdicts and
the plain-text table. No I/O, no clock: unit-tested (tests/unit/test_bench_stats.py)."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

PASS, MISS, NOT_AVAILABLE = "PASS", "MISS", "n/a"


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks (the
    "inclusive" method: the 0th is the minimum, the 100th the maximum)."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, mean, min and max in milliseconds (one decimal) of samples in seconds."""
    ms = [s * 1000 for s in seconds]
    values = {
        "n": len(ms),
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "mean": statistics.fmean(ms),
        "min": min(ms),
        "max": max(ms),
    }
    return {k: round(v, 1) for k, v in values.items()}


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline (two decimals); None when either is missing or the baseline is 0."""
    if value is None or baseline is None or baseline == 0:
        return None
    return round(value / baseline, 2)


@dataclasses.dataclass(frozen=True)
class Target:
    """One target of the issue: `value` must be at most (`<=`) or at least
    (`>=`) `limit`. A value of None (the figure could not be measured) is n/a."""

    name: str
    value: float | None
    op: str
    limit: float
    unit: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise ValueError(f"op must be '<=' or '>=', not {self.op!r}")

    @property
    def verdict(self) -> str:
        if self.value is None:
            return NOT_AVAILABLE
        met = self.value <= self.limit if self.op == "<=" else self.value >= self.limit
        return PASS if met else MISS

    def as_dict(self) -> dict[str, object]:
        return {
            "target": self.name,
            "value": self.value,
            "op": self.op,
            "limit": self.limit,
            "unit": self.unit,
            "verdict": self.verdict,
            "note": self.note,
        }


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = (str(c) for c in cells)
        return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))])

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])
