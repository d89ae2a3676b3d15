"""The WeChat official account channel (微信公众号), mounted at ``/wechat``.

- ``GET /wechat``: URL verification; ``POST /wechat``: messages and events, in plaintext or
  safe mode (``WeChatCrypto`` with ``wechat.aes_key``). Every request's signature is
  checked and timestamps far from now are refused (403).
- XML is parsed with defusedxml (no DTDs, no entities) and bodies are size limited, so
  hostile XML gets a 4xx.
- The 5-second rule: the pipeline runs as a task; when it answers within
  ``wechat.passive_reply_budget_s`` the answer is the passive reply, otherwise the request
  gets ``success`` at once and the answer goes out through the customer-service API
  (``message/custom/send``). Photos and deferred turns (face verification) always go that way.
- A delivery WeChat repeats (same MsgId, or FromUserName + CreateTime for events) is
  claimed once in Redis, so it is processed and answered once, even while the first is
  still running.
- wechatpy does signatures, crypto and reply XML. The HTTP API calls (access token,
  media/get, message/custom/send) go through the client in ``bot/channels/wechat_api.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import re
import time
import xml.etree.ElementTree as StdET
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from typing import Any

import aiohttp
from aiohttp import web
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from bot import keys
from bot.channels.adapter import PHOTO_FAILED as PHOTO_FAILED_TEXT
from bot.channels.adapter import mount, record_send_failure
from bot.channels.wechat_api import TOO_LARGE_ERRCODE, WechatApi, WechatApiError
from bot.core.errors import BadRequest, BotError, ConfigError, ExternalServiceError, Forbidden
from bot.core.i18n import render, tr
from bot.core.messages import InboundMessage, Reply
from bot.core.outbox import DeliveryFailed
from bot.core.pipeline import Turn
from bot.core.storage.redis import redis_guard
from bot.safety import ensure_utf8
from bot.services import Services

log = logging.getLogger(__name__)

CHANNEL = "wechat"
TEXT_LIMIT_BYTES = 2048          # WeChat's limit for one text message
MAX_BODY_BYTES = 64 * 1024       # real callbacks are a few hundred bytes
_OPENID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_QUERY_PART = re.compile(r"\A[A-Za-z0-9_\-]{1,128}\Z")  # timestamp, nonce, signature

UNSUPPORTED_TEXT = tr("我现在能看懂文字、语音和照片。请您打字、发语音或者发照片给我。")
VOICE_NO_TEXT = (tr("这条语音我没能听清楚（没有收到语音转成的文字）。"
                 "请您打字告诉我，或者把手机屏幕上的内容拍张照片发给我。"))
TOO_LONG_TEXT = tr("您的消息太长了，请分成几条短一点的消息发给我。")
PHOTO_TOO_LARGE_TEXT = tr("这张照片太大了，请直接用手机拍一张普通照片发过来（10MB 以内）。这次不算次数。")


# ---------------------------------------------------------------- rendering

def render_text(replies: Sequence[Reply]) -> str:
    """All replies of a turn as one text, options as "回复 1 ..." lines."""
    return "\n\n".join(r.as_plain_text() for r in replies if r.text or r.options).strip()


def split_text(text: str, limit_bytes: int = TEXT_LIMIT_BYTES) -> list[str]:
    """Split into pieces of at most ``limit_bytes`` UTF-8 bytes, preferring line breaks."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) <= limit_bytes:
            current = candidate
            continue
        if current:
            pieces.append(current)
        current = ""
        while len(line.encode()) > limit_bytes:  # one very long line: cut by characters
            cut, size = 0, 0
            for i, char in enumerate(line):
                size += len(char.encode())
                if size > limit_bytes:
                    cut = i
                    break
            pieces.append(line[:cut])
            line = line[cut:]
        current = line
    if current.strip():
        pieces.append(current)
    return [p for p in pieces if p.strip()]


# ---------------------------------------------------------------- XML and signatures

def parse_xml(body: bytes | str) -> dict[str, str]:
    """A WeChat ``<xml>`` document as a flat dict; hostile or broken XML is a 400."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, StdET.ParseError, ValueError) as exc:
        raise BadRequest(f"unacceptable XML: {exc.__class__.__name__}", code="invalid_xml",
                         user_message=tr("消息格式不对。")) from exc
    if root.tag != "xml":
        raise BadRequest("root element must be <xml>", code="invalid_xml", user_message=tr("消息格式不对。"))
    return {child.tag: child.text or "" for child in root}


def signature(*parts: str) -> str:
    """WeChat's SHA1 signature of the sorted parts."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


# ---------------------------------------------------------------- the channel

class WechatChannel:
    """Turns WeChat callbacks into InboundMessages and delivers the answers."""

    def __init__(self, services: Services, api: WechatApi) -> None:
        self.services = services
        self.settings = services.settings
        self.config = services.settings.wechat
        self.api = api
        self.crypto: WeChatCrypto | None = None
        self.mode = self.config.mode
        if self.mode == "safe" and not self.config.aes_key:
            raise ConfigError("wechat.encoding_mode safe needs wechat.aes_key (WECHAT_AES_KEY)")
        if self.config.aes_key and self.mode != "plain":
            try:
                self.crypto = WeChatCrypto(self.config.token, self.config.aes_key, self.config.app_id or "")
            except (AssertionError, ValueError, TypeError) as exc:
                raise ConfigError("wechat.aes_key must be the 43-character EncodingAESKey") from exc
        self.tasks: set[asyncio.Task[Any]] = set()
        self.retry_delays: tuple[float, ...] = (0.5, 2.0, 8.0)

    # -- security
    def check_request(self, request: web.Request) -> None:
        """Signature and timestamp of every callback; 403 otherwise."""
        q = request.query
        timestamp, nonce, sig = q.get("timestamp", ""), q.get("nonce", ""), q.get("signature", "")
        assert self.config.token
        if not all(_QUERY_PART.match(part) for part in (timestamp, nonce, sig)):
            log.warning("wechat request with a malformed signature refused")
            raise Forbidden("malformed wechat signature parameters")
        expected = signature(self.config.token, timestamp, nonce)
        if not sig or not hmac.compare_digest(expected, sig):
            log.warning("wechat request with a bad signature refused")
            raise Forbidden("bad wechat signature")
        try:
            sent_at = int(timestamp)
        except ValueError as exc:
            raise Forbidden("bad wechat timestamp") from exc
        if abs(time.time() - sent_at) > self.config.max_clock_skew_s:
            log.warning("wechat request with a stale timestamp refused", extra={"skew_s": time.time() - sent_at})
            raise Forbidden("wechat timestamp too far from now")

    @redis_guard
    async def check_replay(self, q: Any, body: bytes) -> None:
        """Refuse a (timestamp, nonce, signature) already seen with another body (403).

        The signature covers only the query, so without this one signed URL could carry any
        number of different messages within the clock-skew window. The same body again is
        WeChat's redelivery and passes (the message itself is answered once by the claim)."""
        seen = hashlib.sha256("\0".join((q.get("timestamp", ""), q.get("nonce", ""),
                                          q.get("signature", ""))).encode()).hexdigest()
        digest = hashlib.sha256(body).hexdigest().encode()
        key = f"wechat:nonce:{seen}"
        ttl = 2 * self.config.max_clock_skew_s + 60  # outlives every timestamp still accepted
        if await self.services.redis.set(key, digest, nx=True, ex=ttl):
            return
        if await self.services.redis.get(key) != digest:
            log.warning("wechat signature replayed with another body refused")
            raise Forbidden("wechat signature replayed")

    async def read_body(self, request: web.Request) -> bytes:
        """The request body, refusing anything above MAX_BODY_BYTES (413)."""
        too_large = BadRequest("wechat body too large", code="body_too_large", status=413,
                               user_message=tr("内容太大了。"))
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    # -- HTTP handlers
    async def verify(self, request: web.Request) -> web.Response:
        """URL verification: echo ``echostr`` when the signature is right."""
        self.check_request(request)
        echostr = request.query.get("echostr")
        if not echostr:
            raise BadRequest("echostr missing", code="missing_echostr")
        return web.Response(text=echostr)

    async def receive(self, request: web.Request) -> web.Response:
        """One message or event from WeChat."""
        self.check_request(request)
        body = await self.read_body(request)
        q = request.query
        encrypted = q.get("encrypt_type", "raw").lower() == "aes"
        if not encrypted and self.mode == "safe":
            log.warning("plaintext wechat callback refused (encoding_mode safe)")
            raise Forbidden("plaintext callback in safe mode")
        await self.check_replay(q, body)
        fields = parse_xml(body)
        if encrypted:
            fields = self.decrypt(fields, q)
        ensure_utf8(fields)
        reply = _Replier(self, fields, encrypted, q.get("nonce", ""))
        return await self.dispatch(fields, reply)

    def decrypt(self, outer: dict[str, str], q: Any) -> dict[str, str]:
        if self.crypto is None:  # no aes_key, or encoding_mode plain
            raise BadRequest("encrypted message but WECHAT_AES_KEY is not configured",
                             code="safe_mode_not_configured")
        encrypt = outer.get("Encrypt")
        if not encrypt:
            raise BadRequest("safe-mode message without <Encrypt>", code="invalid_xml")
        try:
            plain = self.crypto.decrypt_message({"Encrypt": encrypt}, q.get("msg_signature", ""),
                                                q.get("timestamp", ""), q.get("nonce", ""))
        except InvalidSignatureException as exc:
            raise Forbidden("bad wechat msg_signature") from exc
        except Exception as exc:  # noqa: BLE001 - any undecryptable body is bad input
            raise BadRequest(f"cannot decrypt: {exc.__class__.__name__}", code="invalid_ciphertext") from exc
        return parse_xml(plain)

    async def dispatch(self, fields: dict[str, str], reply: _Replier) -> web.Response:
        openid = fields.get("FromUserName", "").strip()
        msg_type = fields.get("MsgType", "").strip().lower()
        create_time = fields.get("CreateTime", "").strip()
        if not _OPENID.match(openid) or not msg_type or not fields.get("ToUserName"):
            raise BadRequest("message lacks FromUserName/ToUserName/MsgType", code="invalid_message")
        if msg_type == "event":
            event = fields.get("Event", "").strip().lower()
            message_id = f"ev:{openid}:{create_time}:{event}"
        else:
            message_id = fields.get("MsgId", "").strip() or f"m:{openid}:{create_time}:{msg_type}"
        if msg_type == "image" and not fields.get("MediaId", "").strip():
            raise BadRequest("image without MediaId", code="invalid_message")
        base = InboundMessage(channel=CHANNEL, user_id=openid, message_id=message_id)

        if msg_type == "event":
            if event == "unsubscribe":
                log.info("wechat user unsubscribed", extra={"user": openid[:4] + "…"})
                return reply.success()
            if event == "subscribe":
                inbound = dataclasses.replace(base, event="subscribe")
            elif event == "click":
                key = fields.get("EventKey", "").strip()
                if not key:
                    return reply.success()
                inbound = dataclasses.replace(base, event=f"menu:{key.removeprefix('menu:').lower()}")
            else:  # VIEW, LOCATION, SCAN...: nothing to say
                return reply.success()
            return await self.answer(inbound, reply)  # the pipeline drops WeChat's retries

        if msg_type == "text":
            text = _CONTROL.sub("", fields.get("Content", ""))
            if len(text) > self.settings.server.max_text_chars:
                return reply.text(await self.in_language(openid, TOO_LONG_TEXT))
            return await self.answer(dataclasses.replace(base, text=text), reply)
        if msg_type == "image":
            if not await self.claim(message_id):  # before the download, not only in the pipeline
                return reply.success()
            self.spawn(self.run_and_deliver(base, fields["MediaId"].strip()))
            return reply.success()
        if msg_type == "voice":
            transcript = fields.get("Recognition", "").strip()
            if not transcript:
                return reply.text(await self.in_language(openid, VOICE_NO_TEXT))
            return await self.answer(dataclasses.replace(base, voice_transcript=transcript), reply)
        return reply.text(await self.in_language(openid, UNSUPPORTED_TEXT))

    @redis_guard
    async def claim(self, message_id: str) -> bool:
        """True for the first delivery of a message, False for WeChat's retries."""
        ttl = self.settings.conversation.dedup_ttl_s
        first = await self.services.redis.set(f"wechat:claim:{message_id}", b"1", nx=True, ex=ttl)
        if not first:
            log.info("wechat retry ignored", extra={"kind": "event" if message_id.startswith("ev:") else "message"})
        return bool(first)

    async def answer(self, inbound: InboundMessage, reply: _Replier) -> web.Response:
        """Passive reply when the pipeline is quick, else ``success`` and the CS API."""
        task = self.spawn(self.turn(inbound, None))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.config.passive_reply_budget_s)
        except asyncio.CancelledError:
            self.spawn(self.deliver_later(task, inbound.user_id))
            raise
        if task not in done:
            self.spawn(self.deliver_later(task, inbound.user_id))
            return reply.success()
        exc = task.exception()
        if exc is not None:
            return reply.text(await self.in_language(inbound.user_id, error_text(exc)))
        turn: Turn = task.result()
        text = render_text(turn.replies)
        if not text or turn.outcome == "duplicate":
            return reply.success()
        if turn.deferred or len(text.encode()) > TEXT_LIMIT_BYTES:
            self.spawn(self.deliver(inbound.conversation_key, turn.replies))
            return reply.success()
        return reply.text(text)

    async def turn(self, inbound: InboundMessage, media_id: str | None) -> Turn:
        """Download the photo if any, then run the pipeline."""
        if media_id is not None:
            try:
                image = await self.api.download_media(media_id)
            except WechatApiError as exc:
                log.error("wechat photo download failed: %s", exc.detail)
                text = PHOTO_TOO_LARGE_TEXT if exc.errcode == TOO_LARGE_ERRCODE else PHOTO_FAILED_TEXT
                raise ExternalServiceError(exc.detail, user_message=text) from exc
            inbound = dataclasses.replace(inbound, image=image)
        return await self.services.handle(inbound)

    async def run_and_deliver(self, inbound: InboundMessage, media_id: str | None) -> None:
        """The customer-service way from the start (photos)."""
        await self.deliver_later(self.spawn(self.turn(inbound, media_id)), inbound.user_id)

    async def in_language(self, openid: str, text: str) -> str:
        """A message said outside the pipeline (limits, errors) in the chat's language."""
        return render(text, await self.services.outbox.language_of(f"{CHANNEL}:{openid}"))

    async def deliver_later(self, task: Awaitable[Turn], openid: str) -> None:
        """Wait for a slow turn and send its answer through the customer-service API."""
        key = f"{CHANNEL}:{openid}"
        try:
            turn = await task
        except Exception as exc:  # noqa: BLE001 - the user must hear something
            log.error("wechat turn failed: %s", exc.__class__.__name__, exc_info=not isinstance(exc, BotError))
            await self.deliver(key, [Reply(error_text(exc))])
            return
        if turn.outcome != "duplicate":
            await self.deliver(key, turn.replies)

    # -- outbox sender
    async def send(self, conversation_key: str, replies: Sequence[Reply]) -> None:
        """Outbox sender: like ``deliver``, raising ``DeliveryFailed`` when a piece was lost."""
        if not await self.deliver(conversation_key, replies):
            raise DeliveryFailed(f"wechat message to {conversation_key[:11]}… not delivered")

    async def deliver(self, conversation_key: str, replies: Sequence[Reply]) -> bool:
        """Customer-service messages with retries and backoff; failures are recorded.

        Returns False when some piece could not be delivered."""
        openid = conversation_key.split(":", 1)[1]
        if any(reply.unrendered for reply in replies):  # errors said outside a turn
            language = await self.services.outbox.language_of(conversation_key)
            replies = [reply.localized(language) for reply in replies]
        delivered = True
        for piece in split_text(render_text(replies)):
            delivered = await self._send_piece(conversation_key, openid, piece) and delivered
        return delivered

    async def _send_piece(self, conversation_key: str, openid: str, text: str) -> bool:
        error: WechatApiError | None = None
        for attempt in range(len(self.retry_delays) + 1):
            if attempt:
                await asyncio.sleep(self.retry_delays[attempt - 1])
            try:
                await self.api.send_text(openid, text)
                return True
            except WechatApiError as exc:
                error = exc
                log.warning("wechat send failed (attempt %d): %s", attempt + 1, exc.detail)
                if exc.permanent:
                    break
            except BotError as exc:  # Redis down while reading the token
                error = WechatApiError(exc.detail)
        assert error is not None
        log.error("wechat message could not be delivered: %s", error.detail,
                  extra={"conversation": conversation_key[:11] + "…"})
        await record_send_failure(self.services, CHANNEL, conversation_key, text, errcode=error.errcode,
                                  error=error.detail[:200], attempts=attempt + 1)
        return False

    # -- tasks
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, BotError):
                log.error("wechat background task failed: %r", exc)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for answers still on their way (shutdown, tests)."""
        deadline = time.monotonic() + timeout
        while self.tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self.tasks), timeout=max(0.0, deadline - time.monotonic()))


class _Replier:
    """Builds the HTTP answer to one callback (passive reply or ``success``)."""

    def __init__(self, channel: WechatChannel, fields: dict[str, str], encrypted: bool, nonce: str) -> None:
        self.channel = channel
        self.fields = fields
        self.encrypted = encrypted
        self.nonce = nonce

    def success(self) -> web.Response:
        return web.Response(text="success")

    def text(self, text: str) -> web.Response:
        pieces = split_text(text)
        if len(pieces) != 1:  # too long for one passive reply: customer-service messages instead
            if pieces:
                openid = self.fields.get("FromUserName", "")
                self.channel.spawn(self.channel.deliver(f"{CHANNEL}:{openid}", [Reply(text)]))
            return self.success()
        content = pieces[0].replace("]]>", "]] >")  # the reply template puts it in CDATA
        xml = TextReply(source=self.fields.get("ToUserName", ""), target=self.fields.get("FromUserName", ""),
                        content=content, time=int(time.time())).render()
        if self.encrypted and self.channel.crypto is not None:
            xml = self.channel.crypto.encrypt_message(xml, self.nonce or "nonce", str(int(time.time())))
        return web.Response(text=xml, content_type="application/xml")


def error_text(exc: BaseException) -> str:
    """What the user reads when a turn failed (BotError's own message when it is not one)."""
    return exc.user_message if isinstance(exc, BotError) else BotError.user_message


# ---------------------------------------------------------------- app wiring

WECHAT = web.AppKey("wechat_channel", WechatChannel)


async def wechat_ctx(app: web.Application) -> AsyncIterator[None]:
    """The API client and the channel; registers the outbox sender."""
    services = app[keys.SERVICES]
    config = services.settings.wechat
    if not (config.app_id and config.app_secret):
        log.warning("WECHAT_APP_ID/WECHAT_APP_SECRET not set: only passive replies will work")
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    channel = WechatChannel(services, WechatApi(services.settings, services.redis, session))
    services.outbox.register(CHANNEL, channel.send)
    app[WECHAT] = channel
    log.info("wechat channel on", extra={"safe_mode": channel.crypto is not None, "mode": channel.mode})
    try:
        yield
    finally:
        await channel.drain()
        for task in list(channel.tasks):
            task.cancel()
        await session.close()


def setup(app: web.Application) -> None:
    """Mount ``/wechat`` when ``wechat.token`` is configured."""
    if app[keys.SETTINGS].wechat.token:
        mount(app, wechat_ctx, WECHAT, [("GET", "/wechat", WechatChannel.verify),
                                        ("POST", "/wechat", WechatChannel.receive)])
