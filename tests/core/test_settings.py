from pathlib import Path

import pytest

from core.errors import SettingsError
from core.settings import load_settings


def test_defaults_are_embedded() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///tileclass.db"
    assert settings.is_embedded_broker
    assert settings.device == "auto"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_BROKER_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("TILECLASS_VISIBILITY_TIMEOUT", "120")
    monkeypatch.setenv("TILECLASS_TILE_ROOTS", '{"ortho": "/mnt/ortho"}')
    settings = load_settings()
    assert not settings.is_embedded_broker
    assert settings.visibility_timeout == 120
    assert settings.tile_roots == {"ortho": Path("/mnt/ortho")}


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TILECLASS_DEVICE=cuda:1\n")
    assert load_settings().device == "cuda:1"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TILECLASS_DEVICE", "gpu", "TILECLASS_DEVICE: must be one of auto, cpu, cuda or cuda:N"),
        ("TILECLASS_VISIBILITY_TIMEOUT", "soon", "TILECLASS_VISIBILITY_TIMEOUT"),
        ("TILECLASS_DATABASE_URL", "mysql://x", "TILECLASS_DATABASE_URL: must be a sqlite:///"),
        ("TILECLASS_BROKER_URL", "kafka://x", "TILECLASS_BROKER_URL"),
        ("TILECLASS_TILE_ROOTS", '{"bad name": "/x"}', "TILECLASS_TILE_ROOTS"),
    ],
)
def test_bad_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message
