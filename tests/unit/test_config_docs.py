"""README's configuration tables must be what the settings classes render
today (scripts/gen_config_docs.py), and every setting must say what it is."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from scripts.gen_config_docs import README, TABLES, render, table


def test_readme_configuration_tables_are_fresh():
    current = README.read_text()
    assert render(current) == current, "README.md's configuration tables are stale: run scripts/gen_config_docs.py"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_setting_is_in_its_table(name):
    settings = TABLES[name]
    prefix = settings.model_config["env_prefix"]
    rendered = table(settings)
    for field in settings.model_fields:
        if field != "limits":  # the MESH_* table lists the request limits
            assert f"| `{prefix}{field.upper()}` |" in rendered


def test_a_setting_without_a_docstring_is_refused():
    class Undocumented(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="X_", use_attribute_docstrings=True)

        documented: int = 1
        """Says what it is."""
        silent: str = ""

    with pytest.raises(ValueError, match=r"Undocumented\.silent has no docstring"):
        table(Undocumented)


def test_a_table_without_its_markers_is_refused():
    with pytest.raises(ValueError, match="config:spawner begin"):
        render("no markers here\n")
