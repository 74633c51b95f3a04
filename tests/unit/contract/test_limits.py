"""One set of request limits for the mesh (services/common/contract/limits.py)."""

from __future__ import annotations

import pydantic
import pytest

from services.common.contract.limits import RequestLimits


def test_defaults():
    limits = RequestLimits()
    assert (limits.max_files, limits.max_file_bytes, limits.max_total_file_bytes) == (100, 1024 * 1024, 10 * 1024 * 1024)
    assert (limits.max_path_length, limits.max_args, limits.max_env, limits.max_packages) == (255, 64, 64, 50)


def test_read_from_mesh_variables(monkeypatch):
    monkeypatch.setenv("MESH_MAX_FILES", "7")
    monkeypatch.setenv("MESH_MAX_PACKAGES", "3")
    assert (RequestLimits().max_files, RequestLimits().max_packages) == (7, 3)


def test_out_of_range_is_refused(monkeypatch):
    monkeypatch.setenv("MESH_MAX_PACKAGES", "201")
    with pytest.raises(pydantic.ValidationError):
        RequestLimits()
