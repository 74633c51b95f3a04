"""The runtimes figure's pure parts: what the bench knows of the mesh's warm
pool, whether this engine can run gVisor sandboxes, the side-by-side rows."""

from __future__ import annotations

import pytest

from bench.figures import Failed
from bench.runtimes import (
    Pool,
    first_float,
    gvisor_problem,
    in_turn,
    pool_from_metrics,
    pool_from_settings,
    row,
    without_gvisor,
)

METRICS = """\
# HELP sandbox_spawner_warm_pool_ready Warm sandboxes waiting for an execution.
# TYPE sandbox_spawner_warm_pool_ready gauge
sandbox_spawner_warm_pool_ready{network="none",runtime="python",sandbox_runtime="runc"} 2.0
sandbox_spawner_warm_pool_ready{network="egress",runtime="python",sandbox_runtime="gvisor"} 1.0
# HELP sandbox_spawner_free_slots Free execution slots.
# TYPE sandbox_spawner_free_slots gauge
sandbox_spawner_free_slots 4.0
"""


def test_the_pool_is_read_from_the_spawners_metrics() -> None:
    pool = pool_from_metrics(METRICS, "metrics")
    assert pool.keys == {("python", "none", "runc"), ("python", "egress", "gvisor")}
    assert pool.warm("runc") == (True, "")
    # A gVisor entry with a network is no warm sandbox for a hello world without one.
    assert pool.warm("gvisor") == (False, "n/a: the mesh's pool has no gvisor entry")


def test_no_pool_at_all_is_measured_and_said_to_be_cold() -> None:
    pool = pool_from_metrics("sandbox_spawner_free_slots 4.0\n", "metrics")
    measure, note = pool.warm("gvisor")
    assert measure and "no warm pool" in note


def test_an_unknown_pool_is_measured_and_said_so() -> None:
    measure, note = Pool(None, "no spawner metrics at 127.0.0.1:9").warm("gvisor")
    assert measure and "unknown" in note and "127.0.0.1:9" in note


def test_the_pool_is_read_from_the_own_spawners_settings() -> None:
    pool = pool_from_settings(
        {
            ("python", False, "runc", False): 2,
            ("python", False, "gvisor", False): 2,
            ("node", True, "runc", False): 0,
            ("python", False, "runc", True): 1,  # for sessions: not an execution's
        },
        "s",
    )
    assert pool.keys == {("python", "none", "runc"), ("python", "none", "gvisor")}
    assert pool.warm("gvisor") == (True, "")


def test_gvisor_needs_the_runtime() -> None:
    assert "no runsc" in (gvisor_problem({"runc": {}}, "runsc") or "")
    assert gvisor_problem({"runc": {}, "runsc": {"path": "/usr/bin/runsc"}}, "runsc") is None


def test_gvisor_entries_are_dropped_from_a_warm_pool_value() -> None:
    assert without_gvisor("python=2,python+gvisor=2,node+network+gvisor=1,node=1") == "python=2,node=1"
    assert without_gvisor("python=2") == "python=2"


def test_a_row_gives_both_sides_and_the_gvisor_to_runc_ratios() -> None:
    out = row("hello (ms)", {"runc": [0.010, 0.020, 0.030], "gvisor": [0.040, 0.040, 0.040]})
    assert out["runc"]["p50"] == 20.0 and out["gvisor"]["p50"] == 40.0
    assert out["ratio_p50"] == 2.0
    missing = row("warm (ms)", {"runc": [0.01], "gvisor": "n/a: the mesh's pool has no gvisor entry"})
    assert missing["gvisor"] == {"error": "n/a: the mesh's pool has no gvisor entry"}
    assert missing["ratio_p50"] is None and missing["ratio_p95"] is None


def test_the_order_flips_every_round() -> None:
    assert in_turn(0) == ("runc", "gvisor")
    assert in_turn(1) == ("gvisor", "runc")


def test_a_loops_time_is_the_first_number_it_printed() -> None:
    assert first_float(b"0.93 123\n") == pytest.approx(0.93)
    with pytest.raises(Failed):
        first_float(b"Traceback")
