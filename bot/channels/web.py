"""The web chat channel: a page and a small JSON API (a stable contract).

- ``GET /``: the chat page.
- ``POST /api/chat``: JSON ``{"user_id", "text"}`` or multipart ``user_id`` + ``image``.
- ``GET /api/chat/updates?user_id=``: replies produced since the last call.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from bot import keys
from bot.errors import BadRequest
from bot.messages import InboundMessage, Reply
from bot.safety import is_utf8, loads_json, not_utf8

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_USER_ID = re.compile(r"\A[A-Za-z0-9_.:@\-]{1,64}\Z")
dumps = functools.partial(json.dumps, ensure_ascii=False)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _user_id(value: Any) -> str:
    if not isinstance(value, str) or not _USER_ID.match(value):
        raise BadRequest("user_id must be 1-64 letters, digits or _.:@-", code="invalid_user_id",
                         user_message="用户标识不正确。")
    return value


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise BadRequest("text must be a string", code="invalid_text", user_message="消息内容不正确。")
    if not is_utf8(value):
        raise not_utf8("text")
    if len(value) > limit:
        raise BadRequest(f"text longer than {limit} characters", code="text_too_long",
                         user_message=f"消息太长了，请不要超过{limit}个字。")
    return _CONTROL.sub("", value)


def render(replies: list[Reply]) -> dict[str, Any]:
    return {"replies": [reply.to_json() for reply in replies]}


async def chat(request: web.Request) -> web.Response:
    """Take one message from the web page and answer it."""
    services = request.app[keys.SERVICES]
    settings = services.settings
    content_type = request.content_type
    image: bytes | None = None
    text: str | None = None
    message_id: str | None = None
    try:
        if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            user_id = _user_id(form.get("user_id"))
            upload = form.get("image")
            if upload is None or not hasattr(upload, "file"):
                raise BadRequest("multipart needs an image file field", code="missing_image",
                                 user_message="没有收到照片，请重新上传。")
            image = upload.file.read()  # type: ignore[union-attr]
            if not image:
                raise BadRequest("empty image", code="empty_image", user_message="照片是空的，请重新上传。")
        else:
            body = loads_json(await request.read())
            if not isinstance(body, dict):
                raise BadRequest("body must be a JSON object", code="invalid_json",
                                 user_message="请求格式不对。")
            user_id = _user_id(body.get("user_id"))
            text = _text(body.get("text"), settings.server.max_text_chars)
            mid = body.get("message_id")
            if mid is not None:
                if not isinstance(mid, str) or not 1 <= len(mid) <= 64:
                    raise BadRequest("message_id must be a short string", code="invalid_message_id")
                message_id = mid
    except web.HTTPRequestEntityTooLarge as exc:
        raise BadRequest("request body too large", code="body_too_large", status=413,
                         user_message="内容太大了，照片请小于10MB。") from exc
    msg = InboundMessage(channel="web", user_id=user_id, message_id=message_id or uuid.uuid4().hex,
                         text=text, image=image)
    turn = await services.handle(msg)
    return web.json_response(render(turn.replies), dumps=dumps)


async def updates(request: web.Request) -> web.Response:
    """Replies pushed for this user since the last call (face verdicts, staff messages)."""
    services = request.app[keys.SERVICES]
    user_id = _user_id(request.query.get("user_id"))
    replies = await services.outbox.drain(f"web:{user_id}")
    return web.json_response(render(replies), dumps=dumps)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "chat.html")


def setup(app: web.Application) -> None:
    """Mount the web chat routes."""
    app.router.add_get("/", page)
    app.router.add_post("/api/chat", chat)
    app.router.add_get("/api/chat/updates", updates)
