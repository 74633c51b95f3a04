"""The default allowlist, derived from the runtime image's own pip and npm."""

from __future__ import annotations

import docker
import pytest

from services.egress.allowlist import LABEL_ROLE, ROLE, derive
from services.egress.policy import Allowlist, normalize_host

pytestmark = pytest.mark.integration


def test_derived_from_the_runtime_image_is_non_empty_and_valid():
    client = docker.from_env(version="auto")
    try:
        before = {c.id for c in client.containers.list(all=True, filters={"label": f"{LABEL_ROLE}={ROLE}"})}
        hosts = derive("sandbox-mesh/runtime:local", api=client)
        after = {c.id for c in client.containers.list(all=True, filters={"label": f"{LABEL_ROLE}={ROLE}"})}
    finally:
        client.close()
    assert len(hosts) >= 2  # pip's index (and its file host, by default) and npm's registry
    assert all(normalize_host(h) == h for h in hosts)
    assert len(Allowlist.parse(hosts)) == len(hosts)
    assert after <= before  # the probe container was removed
