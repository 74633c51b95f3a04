"""The one way list-valued settings are read from the environment."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import CommaList, split_comma_list


class Example(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_")

    items: CommaList = ()
    maybe: CommaList | None = None


def test_split_comma_list():
    assert split_comma_list(" a, b\nc,,") == ("a", "b", "c")
    assert split_comma_list("") == ()
    assert split_comma_list(" , ") == ()


def test_comma_list_from_environment(monkeypatch):
    monkeypatch.setenv("EXAMPLE_ITEMS", " 10.0.0.0/8 ,fd00::/8,")
    monkeypatch.setenv("EXAMPLE_MAYBE", "")
    settings = Example()
    assert settings.items == ("10.0.0.0/8", "fd00::/8")
    assert settings.maybe == ()


def test_comma_list_unset_keeps_default(monkeypatch):
    monkeypatch.delenv("EXAMPLE_ITEMS", raising=False)
    monkeypatch.delenv("EXAMPLE_MAYBE", raising=False)
    assert Example().items == () and Example().maybe is None
    assert Example(items=["x"]).items == ("x",)
