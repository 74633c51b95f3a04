"""A flood of refusals from one sandbox is rate-limited in the decision log
(the first lines of an interval written, the rest counted in one summary),
while GetDecisions' ring keeps counting every decision."""

from __future__ import annotations

import asyncio

import pytest
from mitmproxy.test import tflow

from services.egress.refusal_limit import RefusalLimiter
from tests.unit.egress.test_addon import NOW, Env, auth, connect_flow, run

FLOOD = 1000
BURST = 5
INTERVAL = 10.0


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def flood_env():
    clock = Clock()
    env = Env(clock=clock, egress_refusal_log_burst=BURST, egress_refusal_log_interval=INTERVAL)
    return env, clock


def refuse(env, execution_id="exec-1", authorization=True, client=None):
    flow = connect_flow(
        "elsewhere.test.internal", authorization=auth(execution_id) if authorization else None, client=client
    )
    run(env.addon.http_connect(flow))
    # Verified credentials reach the allowlist (403); none is a 407.
    assert flow.response.status_code == (403 if authorization else 407)


def test_a_flood_from_one_execution_writes_a_burst_and_one_summary():
    env, clock = flood_env()
    for _ in range(FLOOD):
        refuse(env)
    lines = env.lines()
    assert len(lines) == BURST and all(line["reason"] == "not_allowlisted" for line in lines)
    # The ring keeps every decision: the newest ones, the others counted as dropped.
    records, dropped = env.addon.decisions_for("exec-1")
    assert len(records) + dropped == FLOOD
    assert env.addon.decisions.suppressed_total == FLOOD - BURST

    clock.now += INTERVAL
    env.addon.decisions.flush(clock.now)
    [summary] = env.lines()[BURST:]
    assert summary["reason"] == "refusals_suppressed" and summary["suppressed"] == FLOOD - BURST
    assert summary["execution_id"] == "exec-1" and summary["tenant"] == "tenant-a"
    assert summary["message"] == f"{FLOOD - BURST} more refusals suppressed"
    env.addon.decisions.flush(clock.now + INTERVAL)
    assert len(env.lines()) == BURST + 1  # reported once

    refuse(env)  # a new interval: written again
    assert env.lines()[-1]["reason"] == "not_allowlisted"


def test_the_summary_comes_before_the_next_interval_first_line():
    env, clock = flood_env()
    for _ in range(BURST + 3):
        refuse(env)
    clock.now += INTERVAL + 1
    refuse(env)
    reasons = [line["reason"] for line in env.lines()]
    assert reasons == ["not_allowlisted"] * BURST + ["refusals_suppressed", "not_allowlisted"]
    assert env.lines()[BURST]["suppressed"] == 3


def test_sources_are_limited_separately():
    """One sandbox's flood does not silence another execution, and refusals
    without verified credentials are limited by the client's address."""
    env, _ = flood_env()
    stranger = tflow.tclient_conn()
    stranger.peername = ("172.30.0.9", 40000)
    for _ in range(50):
        refuse(env, "exec-1")
        refuse(env, authorization=False, client=stranger)
    refuse(env, "exec-2")
    lines = env.lines()
    assert sum(1 for line in lines if line["execution_id"] == "exec-1") == BURST
    assert sum(1 for line in lines if line["client"].startswith("172.30.0.9:")) == BURST
    assert lines[-1]["execution_id"] == "exec-2"


def test_allowed_decisions_are_never_suppressed():
    env, _ = flood_env()
    for _ in range(3 * BURST):
        flow = connect_flow(authorization=auth())
        run(env.addon.http_connect(flow))
        env.addon.client_disconnected(flow.client_conn)
    assert [line["decision"] for line in env.lines()] == ["allow"] * 3 * BURST


def test_summaries_written_by_the_addon_loop_and_at_shutdown():
    env, clock = flood_env()
    env.tctx.configure(env.addon, egress_refusal_log_interval=0.05)

    async def refuse_now():
        await env.addon.http_connect(connect_flow("elsewhere.test.internal", authorization=auth()))

    async def scenario():
        await env.addon.running()
        for _ in range(BURST + 2):
            await refuse_now()
        clock.now += 1
        await asyncio.sleep(0.2)  # the loop's periodic flush, with no refusal to trigger it
        assert env.lines()[-1]["suppressed"] == 2
        for _ in range(BURST + 4):
            await refuse_now()
        await env.addon.done()  # reports what is still counted
        assert env.lines()[-1]["suppressed"] == 4

    asyncio.run(scenario())


def test_limiter_state_is_bounded():
    limiter = RefusalLimiter(burst=1, interval_seconds=INTERVAL, max_sources=3)
    for source in ("a", "b", "c"):
        assert limiter.admit(source, NOW) == (True, [])
        assert limiter.admit(source, NOW) == (False, [])
    written, due = limiter.admit("d", NOW + 1)
    assert written and [s.suppressed for s in due] == [1]  # "a" evicted, its count reported
    assert limiter.suppressed_total == 3
    assert [s.suppressed for s in limiter.expired(NOW + INTERVAL)] == [1, 1]  # b and c; d's interval is not over


@pytest.mark.parametrize("args", [(0, 1.0, 1), (1, 0.0, 1), (1, 1.0, 0)])
def test_limiter_refuses_nonsense(args):
    with pytest.raises(ValueError):
        RefusalLimiter(*args)
