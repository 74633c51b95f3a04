"""Which replica may settle an execution whose relay may be gone: the pure
decision (ownership.orphaned), for two replicas sharing one database."""

from services.control.executions.ownership import NO_OWNER, Lease, Owner, orphaned

NOW = 1_000_000
A1, A2 = Owner("a", "a-1"), Owner("a", "a-2")  # replica a, before and after a restart
B1, B2 = Owner("b", "b-1"), Owner("b", "b-2")


def leases(*held: tuple[Owner, int]) -> dict[str, Lease]:
    return {owner.replica: Lease(owner.replica, owner.incarnation, until) for owner, until in held}


def test_a_process_never_settles_what_its_own_relay_holds():
    assert not orphaned(A1, A1, leases((A1, NOW + 1)), NOW)
    assert not orphaned(A1, A1, {}, NOW)  # even with its lease gone


def test_a_restarted_replica_settles_what_its_earlier_incarnation_left_at_once():
    assert orphaned(A1, A2, leases((A2, NOW + 10_000)), NOW)


def test_a_live_replica_keeps_its_executions_from_the_others():
    assert not orphaned(B1, A1, leases((A1, NOW + 1), (B1, NOW + 1)), NOW)


def test_a_replica_whose_lease_ran_out_is_settled_by_the_others():
    assert orphaned(B1, A1, leases((A1, NOW + 1), (B1, NOW)), NOW)
    assert orphaned(B1, A1, leases((B1, NOW - 1)), NOW)


def test_a_replica_that_stopped_or_restarted_is_settled_by_the_others():
    assert orphaned(B1, A1, leases((A1, NOW + 1)), NOW)  # released (or pruned)
    assert orphaned(B1, A1, leases((B2, NOW + 10_000)), NOW)  # b restarted: b-1's relay is gone


def test_the_restarted_replica_does_not_settle_what_its_new_incarnation_relays():
    # b-2 is alive: a sees its rows as owned, whatever b-1 left is orphaned.
    held = leases((A1, NOW + 1), (B2, NOW + 1))
    assert not orphaned(B2, A1, held, NOW)
    assert orphaned(B1, A1, held, NOW)


def test_rows_from_before_owners_were_recorded_are_left_to_the_watchdog():
    assert not orphaned(NO_OWNER, A1, {}, NOW)
    assert not orphaned(NO_OWNER, A1, leases((A1, NOW + 1)), NOW)
