"""Local HTTP servers speaking the WeChat and Telegram APIs, and protocol payload helpers.

Shared by the channel tests and the cross-channel relay / fault tests; the ``fake_wechat``
and ``fake_telegram`` fixtures (a plugin of tests/conftest.py) start them. The fakes record
every call (including failed attempts) and can be told to fail or be slow. ``fake.trickle``
makes a fake send every answer slowly, in small chunks (so a client that reads only what has
arrived so far gets a part), with or without Content-Length, and can cut photo downloads off
halfway (the connection drops).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.channels.wechat import parse_xml
from tests.conftest import Backends, make_settings

TOKEN = "wx-callback-token"
APP_ID = "wx1234567890abcdef"
AES_KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode().rstrip("=")
ACCOUNT = "gh_0123456789ab"
OPENID = "oUser_abcdefghijklmnop1234"


def jpeg() -> bytes:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG")
    return buffer.getvalue()


@dataclass
class Trickle:
    """How a fake server sends its answers (the defaults: in one piece, as aiohttp does)."""

    chunk: int = 0                # bytes per write; 0: the whole answer at once
    delay_s: float = 0.0          # pause after each chunk
    content_length: bool = True   # False: chunked transfer encoding, no Content-Length
    cut_next: int = 0             # the next this many image answers stop halfway (connection dropped)
    cut_at: float = 0.5           # which fraction of the image gets out before the cut


def trickling(owner: Any) -> Callable[[web.Request, Any], Awaitable[web.StreamResponse]]:
    """Middleware sending ``owner.trickle``'s way: chunked, slow, or cut off."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        trickle: Trickle = owner.trickle
        body = response.body if isinstance(response, web.Response) else None
        is_image = response.content_type.startswith("image/")
        cut = is_image and trickle.cut_next > 0
        if not isinstance(body, bytes) or not (trickle.chunk or not trickle.content_length or cut):
            return response
        if cut:
            trickle.cut_next -= 1
        stream = web.StreamResponse(status=response.status)
        stream.content_type = response.content_type
        if response.charset:
            stream.charset = response.charset
        if trickle.content_length:
            stream.content_length = len(body)
        else:
            stream.enable_chunked_encoding()
        await stream.prepare(request)
        sent = body[:int(len(body) * trickle.cut_at)] if cut else body
        step = trickle.chunk or len(sent) or 1
        for start in range(0, len(sent), step):
            await stream.write(sent[start:start + step])
            if trickle.delay_s:
                await asyncio.sleep(trickle.delay_s)
        if cut:
            assert request.transport is not None
            request.transport.close()  # the platform hung up in the middle of the photo
            return stream
        await stream.write_eof()
        return stream

    return middleware


class FakeWechat:
    """The WeChat API endpoints the bot uses, recording every call."""

    def __init__(self) -> None:
        self.tokens_issued: list[str] = []
        self.invalid_tokens: set[str] = set()
        self.sent: list[dict[str, Any]] = []
        self.menus: list[dict[str, Any]] = []
        self.media: dict[str, bytes] = {}
        self.media_requests: list[str] = []
        self.send_errors: list[int] = []  # errcodes to answer to the next sends
        self.send_attempts: list[float] = []  # monotonic time of every message/custom/send call
        self.send_failure: str | None = None  # "http500", "errcode-1" or "slow": every send fails so
        self.send_delay_s = 0.0  # how slow "slow" is
        self.token_delay_s = 0.0
        self.trickle = Trickle()
        self.app = web.Application(middlewares=[trickling(self)])
        self.app.router.add_get("/cgi-bin/token", self.token)
        self.app.router.add_get("/cgi-bin/media/get", self.media_get)
        self.app.router.add_post("/cgi-bin/message/custom/send", self.custom_send)
        self.app.router.add_post("/cgi-bin/menu/create", self.menu_create)
        self.templates: list[dict[str, Any]] = []  # message/template/send and subscribe/bizsend
        self.template_errors: list[int] = []  # errcodes to answer to the next template sends
        self.app.router.add_post("/cgi-bin/message/template/send", self.template_send)
        self.app.router.add_post("/cgi-bin/message/subscribe/bizsend", self.template_send)

    def _token_error(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token not in self.tokens_issued:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        if token in self.invalid_tokens:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
        return None

    async def token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("grant_type") != "client_credential" or q.get("appid") != APP_ID or q.get("secret") != "s3cret":
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        await asyncio.sleep(self.token_delay_s)
        token = f"ACCESS-{len(self.tokens_issued) + 1}-{uuid.uuid4().hex[:6]}"
        self.tokens_issued.append(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def media_get(self, request: web.Request) -> web.StreamResponse:
        error = self._token_error(request)
        if error:
            return error
        media_id = request.query.get("media_id", "")
        self.media_requests.append(media_id)
        if media_id not in self.media:
            return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        return web.Response(body=self.media[media_id], content_type="image/jpeg")

    async def custom_send(self, request: web.Request) -> web.Response:
        error = self._token_error(request)
        if error:
            return error
        self.send_attempts.append(time.monotonic())
        if self.send_failure == "http500":
            return web.Response(status=500, text="Internal Server Error")
        if self.send_failure == "errcode-1":
            return web.json_response({"errcode": -1, "errmsg": "system error"})
        if self.send_failure == "slow":
            await asyncio.sleep(self.send_delay_s)
        if self.send_errors:
            code = self.send_errors.pop(0)
            return web.json_response({"errcode": code, "errmsg": "failed"})
        body = await request.json()
        body["_token"] = request.query["access_token"]
        self.sent.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def template_send(self, request: web.Request) -> web.Response:
        error = self._token_error(request)
        if error:
            return error
        if self.template_errors:
            return web.json_response({"errcode": self.template_errors.pop(0), "errmsg": "failed"})
        body = await request.json()
        if not body.get("touser") or not body.get("template_id") or not isinstance(body.get("data"), dict):
            return web.json_response({"errcode": 47001, "errmsg": "data format error"})
        body["_path"] = request.path
        self.templates.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": len(self.templates)})

    async def menu_create(self, request: web.Request) -> web.Response:
        error = self._token_error(request)
        if error:
            return error
        self.menus.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def texts(self, openid: str = OPENID) -> list[str]:
        return [m["text"]["content"] for m in self.sent if m["touser"] == openid]


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def query(timestamp: int | None = None, nonce: str | None = None, token: str = TOKEN) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or uuid.uuid4().hex[:10]
    return {"signature": sign(token, ts, nonce), "timestamp": ts, "nonce": nonce, "openid": OPENID}


def text_xml(content: str, msg_id: str | None = None, openid: str = OPENID) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content>"
            f"<MsgId>{msg_id or str(uuid.uuid4().int)[:19]}</MsgId></xml>")


def message_xml(msg_type: str, extra: str, msg_id: str | None = None, create_time: int | None = None) -> str:
    msg_id_xml = "" if msg_type == "event" else f"<MsgId>{msg_id or str(uuid.uuid4().int)[:19]}</MsgId>"
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[{msg_type}]]></MsgType>{extra}{msg_id_xml}</xml>")


def passive_text(body: str) -> str:
    fields = parse_xml(body.encode())
    assert fields["MsgType"] == "text"
    assert fields["ToUserName"] == OPENID and fields["FromUserName"] == ACCOUNT
    return fields["Content"]


def wechat_settings(tmp_path: Path, backends: Backends, fake: FakeWechat, **overrides: Any) -> Any:
    values = {"wechat.token": TOKEN, "wechat.app_id": APP_ID, "wechat.app_secret": "s3cret",
              "wechat.api_base": str(fake.server.make_url("/cgi-bin/"))}  # type: ignore[attr-defined]
    values.update(overrides)
    return make_settings(tmp_path, backends, **values)


BOT_TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuv"
SECRET = "webhook-secret-0123456789"
CHAT = 4242

class FakeTelegram:
    """The Bot API methods the bot uses (and file downloads), recording every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.files: dict[str, bytes] = {}
        self.blocked_chats: set[int] = set()
        self.updates: list[dict[str, Any]] = []
        self.message_id = 100
        self.message_sent = asyncio.Event()
        self.send_status: int | None = None  # e.g. 500: sendMessage fails with that HTTP status
        self.trickle = Trickle()
        self.app = web.Application(middlewares=[trickling(self)])
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
        if self.send_status is not None:
            return web.json_response({"ok": False, "error_code": self.send_status,
                                      "description": "Internal Server Error"}, status=self.send_status)
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


def base_url(fake: FakeTelegram) -> str:
    return str(fake.server.make_url("")).rstrip("/")  # type: ignore[attr-defined]


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




# ---------------------------------------------------------------- fixtures


@pytest.fixture
async def fake_wechat(aiohttp_server: Any) -> FakeWechat:
    """A local WeChat API server (the channel's ``wechat.api_base`` in ``wechat_settings``)."""
    fake = FakeWechat()
    fake.server = await aiohttp_server(fake.app)  # type: ignore[attr-defined]
    return fake


@pytest.fixture
async def fake_telegram(aiohttp_server: Any) -> FakeTelegram:
    """A local Telegram Bot API server (see ``base_url``)."""
    fake = FakeTelegram()
    fake.server = await aiohttp_server(fake.app)  # type: ignore[attr-defined]
    return fake
