"""The soak (tests/soak/soak.py) at a small size: a few clients of three
tenants for 20 s; control killed, the engine cut off from the spawners, a
spawner killed, each brought back; every check must hold."""

from __future__ import annotations

import pytest

from tests.soak.soak import soak

pytestmark = pytest.mark.integration


def test_small_soak_with_control_the_engine_and_a_spawner_lost():
    assert soak(clients=6, seconds=20, kill=True, seed=13, memory_every=5) == []
