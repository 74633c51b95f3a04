"""The egress's decision metrics: every decision counted once by verdict,
reason and kind, also those the refusal log suppressed, and the bytes of
allowed ones; counts survive a reconfiguration that replaces the log."""

from __future__ import annotations

from services.egress.audit import ALLOW, DENY, DecisionLog, Record
from services.egress.metrics import DecisionCounts, EgressMetrics
from tests.unit.egress.test_addon import Env, auth, clienthello, connect_flow, run

BURST = 2


def _samples(counts: DecisionCounts) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in counts.collect() for s in m.samples}


def test_every_decision_is_counted_once_even_when_its_line_is_suppressed():
    counts = DecisionCounts()
    log = DecisionLog(refusal_burst=BURST, observer=counts.observe)
    records = [
        Record(time=0.0, kind="connect", host="x.test", execution_id="e", reason="not_allowlisted") for _ in range(5)
    ]
    for record in records:
        log.emit(record)
        log.emit(record)  # a record is written and counted once
    allowed = Record(
        time=0.0, kind="connect", host="pkgs.test", decision=ALLOW, reason="allowed", bytes_up=7, bytes_down=90
    )
    log.emit(allowed)
    assert counts.decisions() == {(DENY, "not_allowlisted", "connect"): 5, (ALLOW, "allowed", "connect"): 1}
    samples = _samples(counts)
    key = (("decision", "deny"), ("kind", "connect"), ("reason", "not_allowlisted"))
    assert samples[("sandbox_egress_decisions_total", key)] == 5
    assert samples[("sandbox_egress_bytes_total", (("direction", "up"), ("kind", "connect")))] == 7
    assert samples[("sandbox_egress_bytes_total", (("direction", "down"), ("kind", "connect")))] == 90


def test_the_addon_counts_its_decisions_across_reconfigurations():
    env = Env(egress_refusal_log_burst=BURST)
    counts = env.addon.decision_counts
    refused = connect_flow("elsewhere.test.internal", authorization=auth())
    run(env.addon.http_connect(refused))
    env.tctx.configure(env.addon, egress_ring_size=10)  # a new decision log, the same counts
    allowed = connect_flow(authorization=auth())
    run(env.addon.http_connect(allowed))
    env.addon.tls_clienthello(clienthello(allowed, "pkgs.test.internal"))
    env.addon.clients[allowed.client_conn.id].bytes_up = 3
    env.addon.clients[allowed.client_conn.id].bytes_down = 4
    env.addon.client_disconnected(allowed.client_conn)
    assert counts.decisions() == {(DENY, "not_allowlisted", "connect"): 1, (ALLOW, "allowed", "connect"): 1}
    registry = EgressMetrics(counts, lambda: None).registry
    assert registry.get_sample_value("sandbox_egress_bytes_total", {"kind": "connect", "direction": "down"}) == 4
    assert (
        registry.get_sample_value(
            "sandbox_egress_decisions_total", {"decision": "deny", "reason": "not_allowlisted", "kind": "connect"}
        )
        == 1
    )
