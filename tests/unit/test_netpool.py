"""services.spawner.netpool against a fake engine: one network per slot with
the egress on it, lent to one execution at a time, checked before each loan,
retired when someone else is still on it, removed (members first) at close
and by the reap, and no single failure stops the rest."""

from __future__ import annotations

import docker
import pytest

from services.spawner import sandbox
from services.spawner.netpool import (
    BRIDGE_OPTIONS,
    LABEL_POOL,
    ROLE_NETWORK,
    NetworkPool,
    NetworkPoolError,
    reap_networks,
)

EGRESS_ID = "e" * 64


class FakeEngine:
    """Networks by name: options, labels and members (container id -> IPv4)."""

    def __init__(self, egress_name: str = "mesh-egress"):
        self.egress_name = egress_name
        self.egress_id = EGRESS_ID
        self.nets: dict[str, dict] = {}
        self.created = 0
        self.fail_create = False
        self.fail_remove: set[str] = set()
        self.calls: list[tuple] = []

    def inspect_container(self, name):
        if name in (self.egress_name, self.egress_id):
            return {"Id": self.egress_id}
        raise docker.errors.NotFound("no such container")

    def create_network(self, name, **kwargs):
        if self.fail_create:
            raise docker.errors.APIError("could not find an available, non-overlapping IPv4 address pool")
        self.created += 1
        self.nets[name] = {"kwargs": kwargs, "members": {}, "subnet": self.created}
        return {"Id": f"id-{name}"}

    def connect_container_to_network(self, container, name):
        self.calls.append(("connect", container, name))
        net = self.nets[name]
        net["members"][container] = f"10.{net['subnet']}.0.{len(net['members']) + 2}"

    def disconnect_container_from_network(self, container, name, force=False):
        self.calls.append(("disconnect", container, name, force))
        del self.nets[name]["members"][container]

    def inspect_network(self, name):
        if name not in self.nets:
            raise docker.errors.NotFound("no such network")
        members = self.nets[name]["members"]
        return {"Containers": {cid: {"IPv4Address": f"{ip}/20"} for cid, ip in members.items()}}

    def remove_network(self, name):
        self.calls.append(("remove", name))
        if name in self.fail_remove:
            raise docker.errors.APIError("network has active endpoints")
        if self.nets[name]["members"]:
            raise docker.errors.APIError("network has active endpoints")
        del self.nets[name]

    def networks(self, filters):
        wanted = dict(label.split("=", 1) for label in filters["label"])
        return [
            {"Name": name, "Id": name, "Labels": net["kwargs"]["labels"]}
            for name, net in self.nets.items()
            if all(net["kwargs"]["labels"].get(k) == v for k, v in wanted.items())
        ]


@pytest.fixture
def engine():
    return FakeEngine()


@pytest.fixture
def failures():
    return []


def make_pool(engine, failures, name="s1"):
    return NetworkPool(engine, name, engine.egress_name, on_failure=lambda *args: failures.append(args))


def test_each_network_is_internal_without_host_address_or_ipv6_and_has_the_egress(engine, failures):
    pool = make_pool(engine, failures)
    pool.fill(3)
    assert len(engine.nets) == 3
    for name, net in engine.nets.items():
        kwargs = net["kwargs"]
        assert kwargs["internal"] is True and kwargs["enable_ipv6"] is False and kwargs["driver"] == "bridge"
        assert kwargs["options"] == BRIDGE_OPTIONS
        assert kwargs["options"]["com.docker.network.bridge.inhibit_ipv4"] == "true"
        assert kwargs["labels"] == {
            sandbox.LABEL_ROLE: ROLE_NETWORK,
            sandbox.LABEL_SPAWNER: "s1",
            LABEL_POOL: pool.token,
        }
        assert name.startswith("sandbox-mesh-s1-")
        assert list(net["members"]) == [EGRESS_ID]
    pool.fill(3)
    assert len(engine.nets) == 3  # already full


def test_no_two_leases_share_a_network_and_the_egress_address_is_that_networks(engine, failures):
    pool = make_pool(engine, failures)
    pool.fill(2)
    first, second = pool.lease(), pool.lease()
    assert first.network != second.network
    for lease in (first, second):
        assert lease.egress_address == engine.nets[lease.network]["members"][EGRESS_ID]
    third = pool.lease()  # more than filled: one more is made, never shared
    assert len({first.network, second.network, third.network}) == 3
    pool.release(first)
    assert pool.lease().network == first.network
    assert failures == []


def test_a_network_someone_is_still_on_is_retired_not_lent(engine, failures):
    pool = make_pool(engine, failures)
    pool.fill(1)
    lease = pool.lease()
    engine.nets[lease.network]["members"]["leftover-sandbox"] = "10.1.0.9"  # its removal failed
    pool.release(lease)
    again = pool.lease()
    assert again.network != lease.network
    assert lease.network not in engine.nets  # members disconnected, then removed
    assert ("disconnect", "leftover-sandbox", lease.network, True) in engine.calls
    assert failures == []


def test_a_retired_network_that_cannot_go_is_tried_again_at_the_sweep(engine, failures):
    pool = make_pool(engine, failures)
    pool.fill(1)
    lease = pool.lease()
    engine.nets[lease.network]["members"]["leftover-sandbox"] = "10.1.0.9"
    engine.fail_remove.add(lease.network)
    pool.release(lease)
    pool.lease()
    assert [f[0] for f in failures] == ["network"]
    assert lease.network in engine.nets
    engine.fail_remove.clear()
    pool.sweep()
    assert lease.network not in engine.nets
    assert len(failures) == 1


def test_an_egress_recreated_since_is_connected_again(engine, failures):
    pool = make_pool(engine, failures)
    pool.fill(1)
    lease = pool.lease()
    pool.release(lease)
    engine.nets[lease.network]["members"].clear()  # the old egress container went away
    engine.egress_id = "f" * 64  # compose made a new one under the same name
    again = pool.lease()
    assert again.network == lease.network
    assert list(engine.nets[lease.network]["members"]) == ["f" * 64]
    assert again.egress_address == engine.nets[lease.network]["members"]["f" * 64]


def test_no_egress_container_is_an_error(engine, failures):
    with pytest.raises(NetworkPoolError, match="no such container"):
        NetworkPool(engine, "s1", "nobody", on_failure=lambda *a: None)


def test_an_engine_out_of_address_pools_is_an_error(engine, failures):
    pool = make_pool(engine, failures)
    engine.fail_create = True
    with pytest.raises(NetworkPoolError, match="cannot create a sandbox network"):
        pool.fill(1)


def test_close_removes_every_network_egress_first_and_goes_on_after_a_failure(engine, failures):
    pool = make_pool(engine, failures)
    pool.fill(3)
    lent = pool.lease()
    names = sorted(engine.nets)
    engine.fail_remove.add(names[0])
    pool.close()
    assert sorted(engine.nets) == [names[0]]
    assert [f[0] for f in failures] == ["network"]
    for name in names:
        assert ("disconnect", EGRESS_ID, name, True) in engine.calls
    assert lent.network in names


def test_reap_removes_this_spawners_networks_of_other_pools_only(engine, failures):
    old = make_pool(engine, failures)
    old.fill(2)
    other_spawner = make_pool(engine, failures, name="s2")
    other_spawner.fill(1)
    current = make_pool(engine, failures)
    current.fill(1)
    old_names = [n for n, v in engine.nets.items() if v["kwargs"]["labels"][LABEL_POOL] == old.token]
    engine.fail_remove.add(old_names[0])
    reap_networks(engine, "s1", current.token, lambda *args: failures.append(args))
    left = {v["kwargs"]["labels"][LABEL_POOL] for v in engine.nets.values()}
    assert left == {old.token, other_spawner.token, current.token}
    assert old_names[1] not in engine.nets and old_names[0] in engine.nets
    assert [f[0] for f in failures] == ["network"]
    reap_networks(engine, "s1", None, lambda *args: failures.append(args))  # at start: all of them
    assert {v["kwargs"]["labels"][sandbox.LABEL_SPAWNER] for v in engine.nets.values()} <= {"s1", "s2"}
    assert not [n for n, v in engine.nets.items() if v["kwargs"]["labels"][LABEL_POOL] == current.token]
