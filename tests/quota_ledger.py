"""Checks a control database's quota counters against what its records say
(used after faults: a transaction that half-applied would show here).

Per tenant, for the quota row's day: the CPU counter is the CPU each ended
execution recorded plus the pre-debit of each still live; the slot counter
the slot time each ended one held plus the pre-debit of each live; the
stored counters the rows and output bytes there are. A verdict that knew no
CPU usage (a spawner whose stream broke) keeps its pre-debit and records no
usage, so an ended record without usage may count either way: the check
accepts any such choice, and nothing else.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from services.control.executions.states import TERMINAL
from services.control.quotas.accounting import slot_seconds_used

TOLERANCE = 1e-3
MS = 1000


def _sums_of_subsets(values: list[int]) -> set[int]:
    sums = {0}
    for value in values:
        sums |= {s + value for s in sums}
    return sums


def mismatches(url: str) -> list[str]:
    """One line per counter that does not match its records; empty when all do."""
    engine = sa.create_engine(url)
    problems: list[str] = []
    try:
        with engine.connect() as connection:
            quotas = connection.execute(sa.text("SELECT * FROM tenant_quotas")).mappings().all()
            for quota in quotas:
                problems += _tenant(connection, quota)
    finally:
        engine.dispose()
    return problems


def _tenant(connection: sa.Connection, quota) -> list[str]:
    tenant, day = quota["tenant"], quota["day"]
    rows = (
        connection.execute(
            sa.text(
                "SELECT status, cpu_debit, slot_debit, slot_at_ms, spawner, finished_at_ms, usage_json, debit_day"
                " FROM executions WHERE tenant = :t"
            ),
            {"t": tenant},
        )
        .mappings()
        .all()
    )
    problems = []
    cpu_known, unknown, slot = 0.0, [], 0.0
    for row in rows:
        if row["debit_day"] != day:
            continue
        if row["status"] not in TERMINAL:
            cpu_known += row["cpu_debit"]
            slot += row["slot_debit"]
            continue
        usage = json.loads(row["usage_json"] or "{}")
        if "cpu_seconds" in usage:
            cpu_known += float(usage["cpu_seconds"])
        else:
            unknown.append(round(row["cpu_debit"] * MS))
        slot += slot_seconds_used(row["slot_at_ms"], bool(row["spawner"]), row["finished_at_ms"])
    rest = round((quota["cpu_seconds_debited"] - cpu_known) * MS)
    if not any(abs(rest - s) <= max(1, len(rows)) for s in _sums_of_subsets(unknown)):
        problems.append(
            f"{tenant}: cpu_seconds_debited {quota['cpu_seconds_debited']:.3f} is not the recorded usage"
            f" {cpu_known:.3f} plus pre-debits of some of {len(unknown)} records without usage"
        )
    if abs(quota["slot_seconds_debited"] - slot) > TOLERANCE * max(1, len(rows)):
        problems.append(f"{tenant}: slot_seconds_debited {quota['slot_seconds_debited']:.3f} != recorded {slot:.3f}")
    stored = connection.execute(
        sa.text(
            "SELECT count(*) AS n, (SELECT coalesce(sum(f.size), 0) FROM output_files f JOIN executions e"
            " ON f.execution_key = e.key WHERE e.tenant = :t) AS bytes FROM executions WHERE tenant = :t"
        ),
        {"t": tenant},
    ).one()
    if quota["stored_executions"] != stored.n:
        problems.append(f"{tenant}: stored_executions {quota['stored_executions']} != {stored.n} records")
    if quota["stored_output_bytes"] != stored.bytes:
        problems.append(f"{tenant}: stored_output_bytes {quota['stored_output_bytes']} != {stored.bytes} recorded")
    return problems
