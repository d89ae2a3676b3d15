"""Security review (issue 15), finding 12: serve restarts its embedded Redis after a SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

from bot import keys
from bot.app import create_app
from bot.core.config import load_settings
from tests.conftest import ROOT
from tests.webchat import web_id


async def test_embedded_redis_is_restarted_after_sigkill(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = load_settings(ROOT / "config.yml", env={},
                             overrides={"storage.data_dir": str(tmp_path / "var")})
    assert settings.redis_embedded
    client = await aiohttp_client(create_app(settings))
    assert (await client.post("/api/chat", json={"user_id": await web_id(client, "kill-1"), "text": "你好"})).status == 200
    embedded = client.server.app[keys.EMBEDDED_REDIS]
    assert embedded.process is not None
    os.kill(embedded.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    await asyncio.sleep(0.05)
    health: dict[str, Any] = {}
    while time.monotonic() - killed_at < 5:
        response = await client.get("/healthz")
        health = await response.json()
        if response.status == 200 and health.get("redis_restarts"):
            break
        await asyncio.sleep(0.1)
    assert health.get("status") == "ok", health
    assert health["redis_restarts"] == 1
    answer = await client.post("/api/chat", json={"user_id": await web_id(client, "kill-1"), "text": "怎么认证"})
    assert answer.status == 200
    assert time.monotonic() - killed_at < 5
