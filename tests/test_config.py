import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.config import expand_env, load_settings
from bot.core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_env_expansion_with_defaults() -> None:
    tree = {"a": "${X}", "b": "${Y:-fallback}", "c": ["${X}-1"], "d": 3}
    assert expand_env(tree, {"X": "hello"}) == {"a": "hello", "b": "fallback", "c": ["hello-1"], "d": 3}


def test_shipped_config_loads_with_defaults() -> None:
    settings = load_settings(ROOT / "config.yml", env={})
    assert settings.server.port == 8080
    assert settings.redis_embedded
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.conversation.idle_timeout_s == 1800


def test_environment_overrides_config() -> None:
    settings = load_settings(ROOT / "config.yml", env={"PORT": "9001", "REDIS_URL": "redis://x:1/0"})
    assert settings.server.port == 9001
    assert settings.storage.redis_url == "redis://x:1/0"


def test_bad_value_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(ROOT / "config.yml", env={"PORT": "eighty"})
    assert "server.port" in info.value.detail


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("server:\n  prot: 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert "server.prot" in info.value.detail


def test_cli_stops_with_a_clear_message_on_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("nlu:\n  backend: magic\n")
    result = subprocess.run([sys.executable, "-m", "bot", "--config", str(path), "serve"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "nlu.backend" in result.stderr


def test_cli_help_lists_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0
    assert "serve" in result.stdout and "chat" in result.stdout
