"""The web chat channel: a page and a small JSON API (a stable contract).

- ``GET /``: the chat page.
- ``POST /api/chat/session``: a server-issued chat id, also set as an HttpOnly cookie.
- ``POST /api/chat``: JSON ``{"user_id", "text"}`` or multipart ``user_id`` + ``image``.
- ``GET /api/chat/updates?user_id=[&wait=S]``: replies produced since the last call; with
  ``wait`` (0-25 s) the request is held until one arrives (long polling).
- ``GET /api/chat/history``: the conversation as shown, for the page after a reload.

The id is a credential: ``<public id>.<signature>``, an HMAC of the public id with a
server secret. Only ids the server signed are accepted (403 ``unknown_user`` otherwise).
The pipeline, the staff console and the logs only ever see the public id
(``web:<public id>``), which cannot be turned back into the credential.

Per client address (``rate_limit.per_address``; the address as ``bot.client_address``
finds it behind ``web_chat.trusted_proxies``): new ids a minute are limited here (429);
messages, ID lookups and staff cases further in, through ``InboundMessage.client_address``
(messages over the limit also answer 429).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from bot import keys
from bot.channels.web_page import load_page
from bot.core.config import WebChatConfig
from bot.core.errors import AddressLimited, BadRequest, Forbidden, StorageUnavailable
from bot.core.i18n import tr
from bot.core.limits import address_bucket, count_hit
from bot.core.logs import mask
from bot.core.messages import InboundMessage, Reply
from bot.core.outbox import ReplyBell
from bot.core.pipeline import RedisBatch, Turn
from bot.core.storage.redis import REDIS_ERRORS, redis_guard
from bot.core.tasks import running
from bot.safety import is_utf8, loads_json, not_utf8
from bot.services import Services

log = logging.getLogger(__name__)
_USER_ID = re.compile(r"\A[A-Za-z0-9_.:@\-]{1,64}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
SESSION_COOKIE = "chat_id"
SECRET_KEY = "webchat:secret"  # the signing secret when web_chat.session_secret is not set
COOKIE_MAX_AGE_S = 365 * 86400
MAX_WAIT_S = 25.0     # longest hold of a long-polling /api/chat/updates
MB = 1024 * 1024
LOOK_AGAIN_S = 2.0    # a held request looks for replies itself this often (the bell may miss)


class UnknownUser(Forbidden, code="unknown_user"):
    """A chat id the server did not issue (or a forged or outdated one)."""

    user_message = tr("聊天身份已失效，请刷新页面重新开始。")


class WebIdentity:
    """Issues and checks web chat ids (``<public id>.<HMAC-SHA256 signature>``)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        configured = services.settings.web_chat.session_secret
        self._secret: bytes | None = configured.encode() if configured else None

    @redis_guard
    async def secret(self) -> bytes:
        """The configured secret, else the one kept in Redis (created by the first process)."""
        if self._secret is None:
            redis = self.services.redis
            await redis.set(SECRET_KEY, secrets.token_hex(32), nx=True)
            stored = await redis.get(SECRET_KEY)
            if not stored:
                raise RuntimeError("web chat secret could not be read back from redis")
            self._secret = stored if isinstance(stored, bytes) else str(stored).encode()
        return self._secret

    @redis_guard
    async def _keep_secret(self) -> None:
        assert self._secret is not None
        await self.services.redis.set(SECRET_KEY, self._secret, nx=True)

    async def _signature(self, public_id: str) -> str:
        digest = hmac.new(await self.secret(), b"webchat:" + public_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    async def credential_for(self, public_id: str) -> str:
        """The credential of ``public_id`` (a new id comes from :meth:`issue`)."""
        if not _PUBLIC_ID.match(public_id):
            raise ValueError("public id must be 1-32 letters, digits, _ or -")
        return f"{public_id}.{await self._signature(public_id)}"

    async def issue(self) -> str:
        """A fresh credential with a random public id (80 bits)."""
        if self._secret is not None and not self.services.settings.web_chat.session_secret:
            await self._keep_secret()  # a Redis that lost it gets ours back, not a new one
        return await self.credential_for(base64.b32encode(secrets.token_bytes(10)).decode().lower())

    async def verify(self, credential: str) -> str | None:
        """The public id when ``credential`` was signed by this server, else None."""
        public_id, dot, signature = credential.rpartition(".")
        if not dot or not _PUBLIC_ID.match(public_id):
            return None
        expected = await self._signature(public_id)
        return public_id if hmac.compare_digest(expected.encode(), signature.encode()) else None


IDENTITY = web.AppKey("web_identity", WebIdentity)
BELL = web.AppKey("web_reply_bell", ReplyBell)
PAGE = web.AppKey("web_chat_page", bytes)


def _limited_address(request: web.Request) -> str | None:
    """The client address when per-address limits apply to it, else None."""
    addresses = request.app[keys.CLIENT_ADDRESSES]
    address = addresses.of(request)
    return address if addresses.limited(address) else None


async def _count_new_id(services: Services, address: str | None) -> None:
    """One more new chat id from ``address`` this minute; 429 above the limit."""
    limit = services.settings.rate_limit.per_address.sessions_per_minute
    if address is not None and await count_hit(
            services.redis, f"rl:addr:session:{address_bucket(address)}", 60) > limit:
        raise AddressLimited("too many new chat ids from one client address")


async def identity_ctx(app: web.Application) -> AsyncIterator[None]:
    """The app's issuer of chat ids, once the services exist."""
    app[IDENTITY] = WebIdentity(app[keys.SERVICES])
    yield


async def bell_ctx(app: web.Application) -> AsyncIterator[None]:
    """The bell that wakes held ``/api/chat/updates`` requests, and its subscription."""
    bell = ReplyBell(app[keys.SERVICES].redis)
    app[BELL] = bell
    async with running(bell.run(), "reply-bell"):
        yield


def _user_id(value: Any) -> str:
    if not isinstance(value, str) or not _USER_ID.match(value):
        raise BadRequest("user_id must be 1-64 letters, digits or _.:@-", code="invalid_user_id",
                         user_message=tr("用户标识不正确。"))
    return value


async def _public_id(request: web.Request, field: Any) -> str:
    """The public id of the caller: the ``user_id`` field, else the cookie; 403 when not ours."""
    raw = field if field is not None else request.cookies.get(SESSION_COOKIE)
    public_id = await request.app[IDENTITY].verify(_user_id(raw))
    if public_id is None:
        raise UnknownUser("chat id not issued by this server")
    return public_id


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise BadRequest("text must be a string", code="invalid_text", user_message=tr("消息内容不正确。"))
    if not is_utf8(value):
        raise not_utf8("text")
    if len(value) > limit:
        raise BadRequest(f"text longer than {limit} characters", code="text_too_long",
                         user_message=tr("消息太长了，请不要超过{limit}个字。", limit=limit))
    return _CONTROL.sub("", value)


def render(replies: list[Reply]) -> dict[str, Any]:
    return {"replies": [reply.to_json() for reply in replies]}


def json_body(data: Any) -> web.Response:
    """A JSON response, encoded by orjson (UTF-8, no escaping of Chinese or Tibetan)."""
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _history_key(user_id: str) -> str:
    return f"webchat:history:{user_id}"


def _queue_history(batch: RedisBatch, settings: WebChatConfig, user_id: str,
                   items: list[dict[str, Any]]) -> None:
    """Queue the appends to the history a reload restores, kept to its length and lifetime."""
    key = _history_key(user_id)
    batch.add(None, "rpush", key, *[orjson.dumps(item) for item in items])
    batch.add(None, "ltrim", key, -settings.history_messages, -1)
    batch.add(None, "expire", key, settings.history_ttl_s)


@redis_guard
async def remember(services: Services, user_id: str, items: list[dict[str, Any]]) -> None:
    """Append what the page showed (the user's texts masked) to the history a reload restores."""
    settings = services.settings.web_chat
    if not items or not settings.history_messages:
        return
    async with services.redis.pipeline(transaction=True) as pipe:
        _queue_history(RedisBatch(pipe), settings, user_id, items)
        await pipe.execute()


def _bot_items(replies: list[Reply]) -> list[dict[str, Any]]:
    return [{"role": "bot", **reply.to_json()} for reply in replies]


async def chat(request: web.Request) -> web.Response:
    """Take one message from the web page and answer it."""
    services = request.app[keys.SERVICES]
    settings = services.settings
    content_type = request.content_type
    image: bytes | None = None
    text: str | None = None
    message_id: str | None = None
    event: str | None = None
    try:
        if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            user_field: Any = form.get("user_id")
            upload = form.get("image")
            if upload is None or not hasattr(upload, "file"):
                raise BadRequest("multipart needs an image file field", code="missing_image",
                                 user_message=tr("没有收到照片，请重新上传。"))
            # aiohttp has read the part to the end; a big one is a file on disk: read it off the loop.
            image = await asyncio.to_thread(upload.file.read)  # type: ignore[union-attr]
            if not image:
                raise BadRequest("empty image", code="empty_image", user_message=tr("照片是空的，请重新上传。"))
        else:
            body = loads_json(await request.read())
            if not isinstance(body, dict):
                raise BadRequest("body must be a JSON object", code="invalid_json",
                                 user_message=tr("请求格式不对。"))
            user_field = body.get("user_id")
            if user_field is not None:
                _user_id(user_field)
            if body.get("event") == "start" and body.get("text") is None:
                event = "subscribe"  # the page was opened on an empty chat: the greeting
            else:
                text = _text(body.get("text"), settings.server.max_text_chars)
            mid = body.get("message_id")
            if mid is not None:
                if not isinstance(mid, str) or not 1 <= len(mid) <= 64:
                    raise BadRequest("message_id must be a short string", code="invalid_message_id")
                message_id = mid
    except web.HTTPRequestEntityTooLarge as exc:
        raise BadRequest("request body too large", code="body_too_large", status=413,
                         user_message=tr("内容太大了，照片请小于{mb}MB。",
                                         mb=settings.server.max_body_bytes // MB)) from exc
    user_id = await _public_id(request, user_field)
    msg = InboundMessage(channel="web", user_id=user_id, message_id=message_id or secrets.token_hex(16),
                         text=text, image=image, event=event, client_address=_limited_address(request))
    shown = [] if event else [{"role": "user", "text": tr("[照片]") if image is not None else mask(text or ""),
                               "options": []}]

    def keep_history(turn: Turn, batch: RedisBatch) -> None:
        """The page's history, written with the turn's own closing Redis batch."""
        items = shown + _bot_items(turn.replies)
        if items and turn.outcome not in ("duplicate", "address_limited") and settings.web_chat.history_messages:
            _queue_history(batch, settings.web_chat, user_id, items)

    turn = await services.handle(msg, closing_writes=[keep_history])
    if turn.outcome == "address_limited":  # counted with the pipeline's first Redis round trip
        raise AddressLimited("too many messages from one client address")
    return json_body(render(turn.replies))


def _wait_s(value: str | None) -> float:
    if value is None:
        return 0.0
    try:
        wait = float(value)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= MAX_WAIT_S:
        raise BadRequest(f"wait must be 0-{MAX_WAIT_S:g} seconds", code="invalid_wait")
    return wait


async def updates(request: web.Request) -> web.Response:
    """Replies pushed for this user since the last call (face verdicts, staff messages).

    ``?wait=S`` (up to 25 s) holds the request until something arrives or S seconds pass
    (long polling). The outbox's bell wakes the request when a reply is queued; it also
    looks for itself every ``LOOK_AGAIN_S`` in case the bell missed (Redis reconnecting)."""
    services = request.app[keys.SERVICES]
    user_id = await _public_id(request, request.query.get("user_id"))
    wait = _wait_s(request.query.get("wait"))
    key = f"web:{user_id}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with request.app[BELL].waiting(key) as rung:  # listening before looking: no push is missed
        replies = await services.outbox.drain(key)
        while not replies and (left := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(rung.wait(), timeout=min(left, LOOK_AGAIN_S))
            except TimeoutError:
                pass
            rung.clear()
            if await services.outbox.waiting(key):
                replies = await services.outbox.drain(key)
    await remember(services, user_id, _bot_items(replies))
    return json_body(render(replies))


async def history(request: web.Request) -> web.Response:
    """The conversation as the page showed it (own id only), including replies not yet fetched."""
    services = request.app[keys.SERVICES]
    user_id = await _public_id(request, request.query.get("user_id"))
    await remember(services, user_id, _bot_items(await services.outbox.drain(f"web:{user_id}")))
    try:
        raw = await services.redis.lrange(_history_key(user_id), 0, -1)  # type: ignore[misc]
    except REDIS_ERRORS as exc:
        raise StorageUnavailable(f"redis: {exc}") from exc
    return json_body({"messages": [json.loads(item) for item in raw]})


async def session(request: web.Request) -> web.Response:
    """Issue a chat id (or confirm the one in the cookie) and set it as an HttpOnly cookie."""
    issuer = request.app[IDENTITY]
    services = request.app[keys.SERVICES]
    current = request.cookies.get(SESSION_COOKIE)
    if current and await issuer.verify(current):
        credential = current
    else:  # only new ids count: a page reloaded with its cookie costs nothing
        await _count_new_id(services, _limited_address(request))
        credential = await issuer.issue()
    response = web.json_response({"user_id": credential})
    response.set_cookie(SESSION_COOKIE, credential, max_age=COOKIE_MAX_AGE_S, path="/api/chat",
                        httponly=True, samesite="Strict", secure=services.settings.web_chat.secure_cookie)
    return response


async def page(request: web.Request) -> web.Response:
    """The chat page, its texts filled from the catalogs (``bot.channels.web_page``)."""
    return web.Response(body=request.app[PAGE], content_type="text/html", charset="utf-8")


def setup(app: web.Application) -> None:
    """Mount the web chat routes."""
    app.cleanup_ctx.append(identity_ctx)
    app.cleanup_ctx.append(bell_ctx)
    app[PAGE] = load_page()
    app.router.add_get("/", page)
    app.router.add_post("/api/chat/session", session)
    app.router.add_post("/api/chat", chat)
    app.router.add_get("/api/chat/updates", updates)
    app.router.add_get("/api/chat/history", history)
