"""The Telegram channel: real Update JSON through /telegram against a local Bot API server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot import keys
from bot.app import create_app
from bot.channels.telegram import HELP_TEXT, TELEGRAM, VOICE_TEXT, TelegramChannel, poll
from bot.core.messages import Reply
from bot.core.pipeline import NextStep, Turn
from bot.core.storage.models import AuditLog
from tests.channel_fakes import (
    BOT_TOKEN,
    CHAT,
    SECRET,
    FakeTelegram,
    base_url,
    buttons,
    callback_update,
    command_update,
    deliver,
    jpeg,
    message_update,
    telegram_settings,
)
from tests.conftest import Backends
from tests.services import free_port

MENU = ["怎么认证", "认证失败了", "需要带什么材料", "帮家人认证", "转人工", "བོད་ཡིག 藏文"]  # + the language option


async def ready(client: Any) -> TelegramChannel:
    channel = client.server.app[TELEGRAM]
    await asyncio.wait_for(channel.ready.wait(), 20)
    return channel


@pytest.fixture
async def tg(aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_telegram: FakeTelegram,
             monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(TelegramChannel, "send_retry_delays", (0.01, 0.01))
    settings = telegram_settings(tmp_path, clean_backends, base_url(fake_telegram),
                                 **{"server.public_base_url": "https://bot.example.org/"})
    client = await aiohttp_client(create_app(settings))
    await ready(client)
    return client


async def test_wrong_or_missing_secret_is_403(tg: Any, fake_telegram: FakeTelegram) -> None:
    assert await deliver(tg, message_update(text="你好"), secret="guess") == 403
    assert await deliver(tg, message_update(text="你好"), secret=None) == 403
    assert fake_telegram.sent() == []


async def test_webhook_is_registered_with_the_secret(tg: Any, fake_telegram: FakeTelegram) -> None:
    registered = fake_telegram.sent("setWebhook")
    assert len(registered) == 1
    assert registered[0]["url"] == "https://bot.example.org/telegram"
    assert registered[0]["secret_token"] == SECRET


async def test_broken_updates_are_400(tg: Any) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    for body in (b"{not json", b"[1]", b'{"message": {}}', b"\xff", b'{"update_id": 1, "message": "x"}',
                 b'{"update_id": 1, "message": {"chat": 5}}', b'{"update_id": 1, "callback_query": []}'):
        response = await tg.post("/telegram", data=body, headers=headers)
        assert response.status == 400, body


# ---------------------------------------------------------------- conversations

async def test_text_gets_an_answer_with_inline_buttons(tg: Any, fake_telegram: FakeTelegram) -> None:
    assert await deliver(tg, message_update(text="你好")) == 200
    [sent] = fake_telegram.sent()
    assert int(sent["chat_id"]) == CHAT
    assert "认证" in sent["text"]
    assert buttons(sent) == [(f"{i}. {label}", label) for i, label in enumerate(MENU, 1)]


async def test_button_callback_feeds_the_pipeline(tg: Any, fake_telegram: FakeTelegram) -> None:
    await deliver(tg, message_update(text="你好"))
    assert await deliver(tg, callback_update("需要带什么材料")) == 200
    assert fake_telegram.sent("answerCallbackQuery")[0]["callback_query_id"].startswith("cbq-")
    assert "身份证" in fake_telegram.texts()[-1]
    # A number works too (long labels are sent as their number).
    await deliver(tg, message_update(text="主菜单"))
    await deliver(tg, callback_update("3"))
    assert "身份证" in fake_telegram.texts()[-1]


async def test_photo_largest_size_is_downloaded_into_the_pipeline(tg: Any, fake_telegram: FakeTelegram) -> None:
    photo = jpeg()
    fake_telegram.files = {"small-id": b"thumbnail", "big-id": photo}
    seen: list[bytes | None] = []

    async def spy(turn: Turn, next_step: NextStep) -> None:
        seen.append(turn.msg.image)
        await next_step()

    tg.server.app[keys.SERVICES].pipeline.middlewares.insert(0, spy)
    update = message_update(photo=[
        {"file_id": "small-id", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 9},
        {"file_id": "big-id", "file_unique_id": "b", "width": 512, "height": 512, "file_size": len(photo)}])
    assert await deliver(tg, update) == 200
    assert [p["file_id"] for p in fake_telegram.sent("getFile")] == ["big-id"]
    assert fake_telegram.sent("download") == [{"path": "photos/big-id.jpg"}]
    assert seen == [photo]
    assert len(fake_telegram.texts()) >= 1


async def test_a_photo_over_the_limit_is_told_the_configured_limit(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends, fake_telegram: FakeTelegram) -> None:
    limit = 3 * 1024 * 1024
    settings = telegram_settings(tmp_path, clean_backends, base_url(fake_telegram),
                                 **{"server.public_base_url": "https://bot.example.org/",
                                    "face.max_image_bytes": limit})
    tg = await aiohttp_client(create_app(settings))
    await ready(tg)
    update = message_update(photo=[
        {"file_id": "huge-id", "file_unique_id": "h", "width": 9000, "height": 9000, "file_size": limit + 1}])
    assert await deliver(tg, update) == 200
    for _ in range(50):  # replies are queued and sent in the background
        if fake_telegram.texts():
            break
        await asyncio.sleep(0.05)
    assert fake_telegram.sent("getFile") == []  # not downloaded
    assert "3MB" in fake_telegram.texts()[-1]


async def test_voice_is_not_supported_yet(tg: Any, fake_telegram: FakeTelegram) -> None:
    update = message_update(voice={"file_id": "v1", "file_unique_id": "v", "duration": 3,
                                   "mime_type": "audio/ogg", "file_size": 2048})
    assert await deliver(tg, update) == 200
    assert fake_telegram.texts() == [VOICE_TEXT]
    assert "打字" in VOICE_TEXT


async def test_start_and_help(tg: Any, fake_telegram: FakeTelegram) -> None:
    await deliver(tg, command_update("/start"))
    [start] = fake_telegram.sent()
    assert "您好" in start["text"] and [label for _, label in buttons(start)] == MENU
    await deliver(tg, command_update("/help"))
    help_text, menu = fake_telegram.sent()[1:]
    assert help_text["text"] == HELP_TEXT
    assert [label for _, label in buttons(menu)] == MENU


async def test_redelivered_update_is_answered_once(tg: Any, fake_telegram: FakeTelegram) -> None:
    update = message_update(text="怎么认证")
    statuses = await asyncio.gather(*(deliver(tg, update) for _ in range(3)))
    assert statuses == [200, 200, 200]
    assert len(fake_telegram.sent()) == 1


async def test_group_messages_are_ignored(tg: Any, fake_telegram: FakeTelegram) -> None:
    update = message_update(text="你好")
    update["message"]["chat"] = {"id": -100123, "type": "supergroup", "title": "家人群"}
    assert await deliver(tg, update) == 200
    assert fake_telegram.sent() == []


# ---------------------------------------------------------------- outbox

async def test_outbox_sends_and_records_persistent_failures(tg: Any, fake_telegram: FakeTelegram) -> None:
    services = tg.server.app[keys.SERVICES]
    await services.push(f"telegram:{CHAT}", [Reply("核验通过，今年的认证已经完成。", ["好的"])])
    [sent] = fake_telegram.sent()
    assert sent["text"].startswith("核验通过") and buttons(sent) == [("1. 好的", "好的")]
    fake_telegram.blocked_chats.add(777)
    await services.push("telegram:777", [Reply("工作人员回复")])
    async with services.db.session() as session:
        rows = list(await session.scalars(select(AuditLog).where(AuditLog.action == "send_failed")))
    assert [r.target for r in rows] == ["telegram:777"]


# ---------------------------------------------------------------- start-up without the network

async def test_unreachable_api_at_start_up_is_retried(aiohttp_client: Any, tmp_path: Path,
                                                     clean_backends: Backends,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TelegramChannel, "start_retry_delays", (0.2,))
    port = free_port()
    settings = telegram_settings(tmp_path, clean_backends, f"http://127.0.0.1:{port}")
    client = await aiohttp_client(create_app(settings))  # starts although nothing listens there
    assert (await client.get("/healthz")).status == 200
    assert await deliver(client, message_update(text="你好")) == 503  # Telegram will redeliver
    channel = client.server.app[TELEGRAM]
    assert not channel.ready.is_set()

    fake = FakeTelegram()
    server = TestServer(fake.app, port=port)
    await server.start_server()
    try:
        await asyncio.wait_for(channel.ready.wait(), 20)
        assert await deliver(client, message_update(text="你好")) == 200
        assert len(fake.sent()) == 1
    finally:
        await server.close()


async def test_polling_mode_answers_updates(fake_telegram: FakeTelegram, services: Any) -> None:
    services.settings.telegram.token = BOT_TOKEN
    services.settings.telegram.api_base = f"{base_url(fake_telegram)}/bot"
    services.settings.telegram.file_base = f"{base_url(fake_telegram)}/file/bot"
    fake_telegram.updates = [message_update(text="你好")]
    stop = asyncio.Event()
    task = asyncio.create_task(poll(services, stop))
    try:
        await asyncio.wait_for(fake_telegram.message_sent.wait(), 20)
        assert fake_telegram.sent("deleteWebhook")
        assert len(fake_telegram.sent()) == 1 and "认证" in fake_telegram.texts()[0]
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
