"""The fixed sentences a tenant is told when the spawner failed
(services/common/contract/failures.py)."""

from __future__ import annotations

from services.common.contract import failures


def test_only_the_fixed_sentences_pass():
    for message in failures.STABLE_MESSAGES:
        assert failures.stable_message(message) == message
    engine_text = '500 Server Error for http+docker://localhost/v1.41/containers/create: ("no such image")'
    assert failures.stable_message(engine_text) == failures.SPAWNER_FAILED
    assert failures.stable_message("") == failures.SPAWNER_FAILED
