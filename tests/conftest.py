"""Suite-wide: every test under tests/integration is marked `integration`
(it needs the Docker engine, the images or a PostgreSQL server), whether or
not its module says so, so `-m "not integration"` leaves none of them in.
tests/unit/test_markers.py checks it."""

from __future__ import annotations

import pathlib

import pytest

INTEGRATION = pathlib.Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION) and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)
