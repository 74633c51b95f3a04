"""A spawner's capacity refusal, told apart from other RESOURCE_EXHAUSTED
(services/common/contract/capacity.py)."""

from __future__ import annotations

import grpc

from services.common.contract.capacity import is_no_free_slot, no_free_slot_status
from services.common.grpc_errors import rich_status


def test_a_capacity_refusal_is_recognised():
    status = no_free_slot_status("all 4 execution slots are busy; retry later")
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert is_no_free_slot(status)


def test_other_statuses_are_not_capacity_refusals():
    size = rich_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (41943100 vs. 24842058)")
    assert not is_no_free_slot(size)
    assert not is_no_free_slot(None)
    other_code = no_free_slot_status("x")
    other_code.code = grpc.StatusCode.UNAVAILABLE.value[0]
    assert not is_no_free_slot(other_code)
