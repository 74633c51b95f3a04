"""Which image each runtime runs in (SpawnerSettings.image_for and
runtime_images, services/spawner/config.py)."""

from __future__ import annotations

from services.common.contract.runtimes import RUNTIME_NAMES
from services.spawner.config import SpawnerSettings


def test_defaults():
    settings = SpawnerSettings()
    assert settings.image_for("python") == "sandbox-mesh/runtime:local"
    assert settings.image_for("node", "") == "sandbox-mesh/runtime:local"
    assert settings.image_for("python", "datascience") == "sandbox-mesh/runtime-datascience:local"


def test_every_runtime_has_an_image():
    assert sorted(SpawnerSettings().runtime_images()) == sorted(RUNTIME_NAMES)


def test_images_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPAWNER_PYTHON_IMAGE", "example/python:1")
    monkeypatch.setenv("SPAWNER_PYTHON_DATASCIENCE_IMAGE", "example/datascience:2")
    settings = SpawnerSettings()
    assert settings.image_for("python") == "example/python:1"
    assert settings.image_for("python", "datascience") == "example/datascience:2"
    assert settings.runtime_images()["python-datascience"] == "example/datascience:2"
