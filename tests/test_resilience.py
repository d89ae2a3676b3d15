"""State survives restarts, is shared by processes, and a lost Redis is loud, not forgetful."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bot.app import create_app
from bot.core.messages import InboundMessage
from bot.services import Services
from tests.conftest import Backends, make_settings
from tests.services import RedisProcess, servers
from tests.webchat import new_web_id, web_id


async def say(client: Any, text: str, user: str = "carol") -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/chat", json={"user_id": await web_id(client, user), "text": text})
    return response.status, await response.json()


async def test_conversation_survives_a_server_restart(aiohttp_client: Any, tmp_path: Path,
                                                      clean_backends: Backends) -> None:
    settings = make_settings(tmp_path, clean_backends)
    first = await aiohttp_client(create_app(settings))
    _, body = await say(first, "我想问点事啊啊")  # clarifying question: menu frame opened
    assert "没太明白" in body["replies"][0]["text"]
    await first.close()

    second = await aiohttp_client(create_app(settings))
    _, body = await say(second, "嗯嗯嗯")  # the second miss is counted: state was kept
    assert "转给工作人员" in body["replies"][0]["text"]
    _, body = await say(second, "2")  # and the offer's options still work
    assert body["replies"][-1]["options"][0] == "怎么认证"


async def test_idle_conversation_expires_and_user_is_welcomed_back(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends) -> None:
    settings = make_settings(tmp_path, clean_backends, **{"conversation.idle_timeout_s": 10})
    client = await aiohttp_client(create_app(settings))
    await say(client, "啊啊啊啊")
    import redis as sync_redis

    sync_redis.Redis.from_url(clean_backends.redis_url).delete("conv:web:carol")  # as if expired
    _, body = await say(client, "你好")
    assert "欢迎回来" in body["replies"][0]["text"]


@pytest.mark.slow
async def test_two_server_processes_continue_one_conversation(tmp_path: Path,
                                                             clean_backends: Backends) -> None:
    async with servers(2, clean_backends.env(tmp_path / "var")) as (ports, session):
        dave = await new_web_id(session, f"http://127.0.0.1:{ports[1]}/api/chat/session")

        async def post(port: int, text: str) -> dict[str, Any]:
            async with session.post(f"http://127.0.0.1:{port}/api/chat",
                                    json={"user_id": dave, "text": text}) as response:
                assert response.status == 200
                return await response.json()

        body = await post(ports[0], "嗯啊啊啊")
        assert "没太明白" in body["replies"][0]["text"]
        body = await post(ports[1], "哦哦哦哦")
        assert "转给工作人员" in body["replies"][0]["text"]
        body = await post(ports[0], "1")  # 转人工, chosen on the other process
        assert "转接人工" in body["replies"][0]["text"]


async def test_stopped_redis_is_503_and_the_bot_recovers(aiohttp_client: Any, tmp_path: Path,
                                                         clean_backends: Backends) -> None:
    redis_server = RedisProcess().start()
    try:
        settings = make_settings(tmp_path, clean_backends,
                                 **{"storage.redis_url": redis_server.url, "storage.redis_timeout_s": 0.5})
        client = await aiohttp_client(create_app(settings))
        status, body = await say(client, "啊啊啊啊")
        assert status == 200

        redis_server.stop()
        health = await client.get("/healthz")
        assert health.status == 503
        assert (await health.json())["redis"] == "down"
        started = time.monotonic()
        status, body = await say(client, "你好")
        assert status == 503
        assert body["error"] == "storage_unavailable"
        assert "稍后再试" in body["replies"][0]["text"]
        assert time.monotonic() - started < 5, "a lost Redis must fail fast, not hang"

        redis_server.start()  # same port, same data dir (append-only file kept the state)
        deadline = time.monotonic() + 5
        while True:
            status, body = await say(client, "嗯嗯嗯")
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert status == 200
        assert "转给工作人员" in body["replies"][0]["text"], "state from before the outage is kept"
        assert (await client.get("/healthz")).status == 200
    finally:
        redis_server.stop()


async def test_concurrent_messages_of_one_chat_take_turns(services: Services) -> None:
    """In one process too: the second message waits for the lock and reads the saved state."""
    texts = [f"需要带什么材料{i}" for i in range(8)]
    turns = await asyncio.gather(*(
        services.handle(InboundMessage(channel="web", user_id="grace", message_id=f"m{i}", text=text))
        for i, text in enumerate(texts)))
    assert all(turn.outcome != "error" and turn.replies for turn in turns)
    conversation = await services.conversations.load("web:grace")
    assert conversation.turns == len(texts), "no turn was lost to a concurrent write"
    roles = [entry["role"] for entry in conversation.transcript]
    assert ("user", "user") not in list(zip(roles, roles[1:], strict=False)), roles
    assert sorted(e["text"] for e in conversation.transcript if e["role"] == "user") == sorted(texts)
    assert not await services.redis.exists("lock:web:grace"), "the lock is released"


async def test_a_retried_message_is_answered_from_the_first_answer(services: Services) -> None:
    message = InboundMessage(channel="web", user_id="henry", message_id="same-id", text="需要带什么材料")
    first = await services.handle(message)
    again = await services.handle(message)
    assert again.outcome == "duplicate"
    assert [r.text for r in again.replies] == [r.text for r in first.replies]
    assert (await services.conversations.load("web:henry")).turns == 1
