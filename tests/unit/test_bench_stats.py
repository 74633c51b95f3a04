"""The benchmarks' statistics: percentiles, ratios, target verdicts, tables."""

from __future__ import annotations

import pytest

from bench.stats import MISS, NOT_AVAILABLE, PASS, Target, fmt, percentile, ratio, summary_ms, table


def test_percentile_interpolates_between_ranks() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]  # order does not matter
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 4.0
    assert percentile(samples, 50) == 2.5
    assert percentile(samples, 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_is_in_milliseconds() -> None:
    summary = summary_ms([0.010, 0.020, 0.030])
    assert summary == {"n": 3, "p50": 20.0, "p95": 29.0, "mean": 20.0, "min": 10.0, "max": 30.0}


def test_ratio_is_none_without_both_figures() -> None:
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(1.0, 3.0) == 0.33
    assert ratio(None, 2.0) is None
    assert ratio(2.0, None) is None
    assert ratio(2.0, 0.0) is None


@pytest.mark.parametrize(
    ("value", "op", "limit", "verdict"),
    [
        (60.0, "<=", 60, PASS),
        (60.1, "<=", 60, MISS),
        (1.5, ">=", 1.5, PASS),
        (1.49, ">=", 1.5, MISS),
        (None, ">=", 1.5, NOT_AVAILABLE),
    ],
)
def test_target_verdicts(value, op, limit, verdict) -> None:
    target = Target("t", value, op, limit, "ms")
    assert target.verdict == verdict
    assert target.as_dict()["verdict"] == verdict


def test_target_refuses_an_unknown_comparison() -> None:
    with pytest.raises(ValueError):
        Target("t", 1.0, "<", 2)


def test_table_aligns_columns() -> None:
    text = table(["name", "p50"], [["warm", fmt(12.345)], ["cold", fmt(None)]])
    assert text.splitlines() == ["name   p50", "----  ----", "warm  12.3", "cold   n/a"]
