import pytest
from pydantic import ValidationError

from services.control.config import ControlSettings, QuotaLimits
from services.control.server import ConfigurationError, secrets_of


def test_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CONTROL_SPAWNERS", "a:1, b:2")
    monkeypatch.setenv("CONTROL_TENANT_KEYS", '{"t1": "k1"}')
    monkeypatch.setenv("CONTROL_TENANT_QUOTAS", '{"t1": {"max_in_flight": 2}}')
    monkeypatch.setenv("CONTROL_DATA_DIR", str(tmp_path))
    settings = ControlSettings()
    assert settings.spawners == ("a:1", "b:2")
    assert settings.tenant_keys["t1"].get_secret_value() == "k1"
    assert settings.quota_for("t1") == QuotaLimits(2, settings.daily_cpu_seconds)
    assert settings.quota_for("t2") == QuotaLimits(settings.max_in_flight, settings.daily_cpu_seconds)
    assert settings.sqlalchemy_url() == f"sqlite:///{tmp_path}/control.db"
    assert settings.listen == "127.0.0.1:50061"


def test_invalid():
    with pytest.raises(ValidationError):
        ControlSettings(default_timeout_ms=5000, max_timeout_ms=1000)
    with pytest.raises(ValidationError):
        ControlSettings(tenant_quotas={"t": {"max_inflight": 1}})


def test_secrets_are_required_unless_insecure():
    with pytest.raises(ConfigurationError, match="CONTROL_SPAWNER_SECRET and CONTROL_TENANT_KEYS"):
        secrets_of(ControlSettings())
    assert secrets_of(ControlSettings(insecure=True)) == (None, None)
    secure = ControlSettings(spawner_secret="s", tenant_keys={"t": "k"})
    assert secrets_of(secure) == (b"s", {"t": b"k"})


def test_tenant_quotas_override_every_limit():
    settings = ControlSettings(
        slot_share=0.25,
        tenant_quotas={"t1": {"daily_slot_seconds": 60, "slot_share": 1, "max_stored_output_bytes": 1000}},
    )
    mine = settings.quota_for("t1")
    assert (mine.daily_slot_seconds, mine.slot_share, mine.max_stored_output_bytes) == (60.0, 1.0, 1000)
    assert isinstance(mine.max_stored_output_bytes, int)
    other = settings.quota_for("t2")
    assert other == QuotaLimits(slot_share=0.25)
    assert settings.execution_limits().retention_days == 30


@pytest.mark.parametrize(
    "quotas",
    [{"t": {"slot_share": 0}}, {"t": {"slot_share": 1.5}}, {"t": {"max_stored_artifacts": -1}}],
)
def test_invalid_tenant_quotas(quotas):
    with pytest.raises(ValidationError):
        ControlSettings(tenant_quotas=quotas)
    with pytest.raises(ValidationError):
        ControlSettings(slot_share=0)
