"""The Telegram channel: real Update JSON through /telegram against a local Bot API server."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot import keys
from bot.app import create_app
from bot.channels.telegram import HELP_TEXT, TELEGRAM, VOICE_TEXT, TelegramChannel, poll
from bot.messages import Reply
from bot.storage.models import AuditLog
from handlers.pipeline import NextStep, Turn
from tests.conftest import Backends, make_settings
from tests.services import free_port

BOT_TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuv"
SECRET = "webhook-secret-0123456789"
CHAT = 4242
MENU = ["怎么认证", "认证失败了", "需要带什么材料", "帮家人认证", "转人工"]


def jpeg() -> bytes:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG")
    return buffer.getvalue()


class FakeTelegram:
    """The Bot API methods the bot uses (and file downloads), recording every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.files: dict[str, bytes] = {}
        self.blocked_chats: set[int] = set()
        self.updates: list[dict[str, Any]] = []
        self.message_id = 100
        self.message_sent = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_route("*", "/bot{token}/{method}", self.api)
        self.app.router.add_get("/file/bot{token}/{path:.+}", self.download)

    async def api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != BOT_TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            for key, value in (await request.post()).items():
                if hasattr(value, "file"):
                    params[key] = value.file.read()
                    continue
                try:
                    params[key] = json.loads(value)
                except (TypeError, ValueError):
                    params[key] = value
        self.calls.append((method, params))
        handler = getattr(self, f"m_{method}", None)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return await handler(params)

    @staticmethod
    def ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def m_getMe(self, params: dict[str, Any]) -> web.Response:
        return self.ok({"id": 123456, "is_bot": True, "first_name": "认证小助手", "username": "pension_qh_bot",
                        "can_join_groups": False, "can_read_all_group_messages": False,
                        "supports_inline_queries": False})

    async def m_setWebhook(self, params: dict[str, Any]) -> web.Response:
        return self.ok(True)

    async def m_deleteWebhook(self, params: dict[str, Any]) -> web.Response:
        return self.ok(True)

    async def m_answerCallbackQuery(self, params: dict[str, Any]) -> web.Response:
        return self.ok(True)

    async def _message(self, params: dict[str, Any], extra: dict[str, Any]) -> web.Response:
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked_chats:
            return web.json_response({"ok": False, "error_code": 403,
                                      "description": "Forbidden: bot was blocked by the user"}, status=403)
        self.message_id += 1
        self.message_sent.set()
        return self.ok({"message_id": self.message_id, "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private"},
                        "from": {"id": 123456, "is_bot": True, "first_name": "认证小助手"}, **extra})

    async def m_sendMessage(self, params: dict[str, Any]) -> web.Response:
        return await self._message(params, {"text": params["text"]})

    async def m_sendPhoto(self, params: dict[str, Any]) -> web.Response:
        return await self._message(params, {"photo": [{"file_id": "out", "file_unique_id": "o", "width": 1,
                                                       "height": 1}]})

    async def m_getFile(self, params: dict[str, Any]) -> web.Response:
        file_id = params["file_id"]
        if file_id not in self.files:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: invalid file_id"}, status=400)
        return self.ok({"file_id": file_id, "file_unique_id": f"u-{file_id}",
                        "file_size": len(self.files[file_id]), "file_path": f"photos/{file_id}.jpg"})

    async def m_getUpdates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset") or 0)
        pending = [u for u in self.updates if u["update_id"] >= offset]
        if not pending:
            await asyncio.sleep(0.2)
        return self.ok(pending)

    async def download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != BOT_TOKEN:
            return web.Response(status=401)
        file_id = request.match_info["path"].removeprefix("photos/").removesuffix(".jpg")
        self.calls.append(("download", {"path": request.match_info["path"]}))
        return web.Response(body=self.files[file_id], content_type="image/jpeg")

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    def texts(self) -> list[str]:
        return [p["text"] for p in self.sent()]


def telegram_settings(tmp_path: Path, backends: Backends, base: str, **overrides: Any) -> Any:
    values = {"telegram.token": BOT_TOKEN, "telegram.webhook_secret": SECRET,
              "telegram.api_base": f"{base}/bot", "telegram.file_base": f"{base}/file/bot"}
    values.update(overrides)
    return make_settings(tmp_path, backends, **values)


@pytest.fixture
async def fake_telegram(aiohttp_server: Any) -> FakeTelegram:
    fake = FakeTelegram()
    fake.server = await aiohttp_server(fake.app)  # type: ignore[attr-defined]
    return fake


def base_url(fake: FakeTelegram) -> str:
    return str(fake.server.make_url("")).rstrip("/")  # type: ignore[attr-defined]


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


USER = {"id": CHAT, "is_bot": False, "first_name": "建国", "language_code": "zh-hans"}
PRIVATE = {"id": CHAT, "type": "private", "first_name": "建国"}
_update_ids = iter(range(900000, 10**7))


def message_update(**content: Any) -> dict[str, Any]:
    update_id = next(_update_ids)
    return {"update_id": update_id, "message": {"message_id": update_id % 100000, "date": int(time.time()),
                                                "chat": PRIVATE, "from": USER, **content}}


def command_update(command: str) -> dict[str, Any]:
    return message_update(text=command, entities=[{"type": "bot_command", "offset": 0, "length": len(command)}])


def callback_update(data: str) -> dict[str, Any]:
    update_id = next(_update_ids)
    return {"update_id": update_id, "callback_query": {
        "id": f"cbq-{update_id}", "from": USER, "chat_instance": "-9876", "data": data,
        "message": {"message_id": 7, "date": int(time.time()), "chat": PRIVATE,
                    "from": {"id": 123456, "is_bot": True, "first_name": "认证小助手"}, "text": "请回复数字选择："}}}


async def deliver(client: Any, update: dict[str, Any], secret: str | None = SECRET) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    response = await client.post("/telegram", json=update, headers=headers)
    return int(response.status)


def buttons(params: dict[str, Any]) -> list[tuple[str, str]]:
    rows = params["reply_markup"]["inline_keyboard"]
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


# ---------------------------------------------------------------- webhook security

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
