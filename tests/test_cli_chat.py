import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, Backends


def test_terminal_chat_runs_the_same_pipeline(tmp_path: Path, clean_backends: Backends) -> None:
    env = dict(os.environ, REDIS_URL=clean_backends.redis_url, DATABASE_URL=clean_backends.database_url,
               BOT_DATA_DIR=str(tmp_path / "var"))
    result = subprocess.run([sys.executable, "-m", "bot", "chat", "--user", "t1"], input="3\n",
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "回复 1 怎么认证" in result.stdout  # the greeting menu, rendered as text lines
    assert "身份证" in result.stdout  # option 3: materials


def test_chat_help() -> None:
    result = subprocess.run([sys.executable, "-m", "bot", "chat", "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0 and "--user" in result.stdout
