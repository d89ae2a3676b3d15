"""The WeChat official-account HTTP API client (the platform side of the WeChat channel).

- The access token is cached in Redis for all processes, refreshed before expiry and on
  40001/42001, by one refresher at a time (a Redis lock).
- ``media/get`` downloads a user's photo whole (size limited, retried when cut off),
  ``message/custom/send`` pushes customer-service text, ``message/template/send`` and
  ``message/subscribe/bizsend`` send reminders, ``menu/create`` publishes the menu.
- Calls are made with aiohttp against ``wechat.api_base`` (wechatpy's client is
  synchronous); wechatpy does the callback side: signatures, crypto and reply XML
  (``bot/channels/wechat.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bot.channels.reading import AnswerIncomplete, AnswerTooLarge, read_limited
from bot.core.config import Settings
from bot.core.errors import ConfigError, ExternalServiceError
from bot.core.storage.redis import held_lock, redis_guard
from bot.records.reminders import Reminder, ReminderSendError

log = logging.getLogger(__name__)

TOKEN_MARGIN_S = 300             # refresh this long before the token expires
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# Errors a retry cannot fix: bad openid, user unsubscribed, 48-hour window closed, quota.
PERMANENT_SEND_ERRORS = frozenset({40003, 43004, 45015, 45047, 48001})
# media/get failures worth another try: transport (0: dropped, cut off, timeout, HTTP 5xx), busy.
RETRY_MEDIA_ERRORS = frozenset({0, -1})
TOO_LARGE_ERRCODE = 40006


class WechatApiError(ExternalServiceError):
    """A WeChat API call failed; ``errcode`` is WeChat's code (0 for transport errors)."""

    def __init__(self, detail: str, errcode: int = 0) -> None:
        super().__init__(detail)
        self.errcode = errcode

    @property
    def permanent(self) -> bool:
        return self.errcode in PERMANENT_SEND_ERRORS


def notice_body(openid: str, template_id: str, data: dict[str, str], link_field: str,
                link: str | None) -> dict[str, Any]:
    """The body of a template message or subscription notice (their link fields differ)."""
    body: dict[str, Any] = {"touser": openid, "template_id": template_id,
                            "data": {name: {"value": value} for name, value in data.items()}}
    if link:
        body[link_field] = link
    return body


class WechatApi:
    """The few official-account API calls, with the access token shared through Redis."""

    def __init__(self, settings: Settings, redis: Any, session: aiohttp.ClientSession) -> None:
        self.config = settings.wechat
        self.max_media_bytes = settings.face.max_image_bytes
        self.redis = redis
        self.session = session
        self.base = self.config.api_base if self.config.api_base.endswith("/") else self.config.api_base + "/"
        app_id = self.config.app_id or "none"
        self.token_key = f"wechat:access_token:{app_id}"
        self.lock_key = f"wechat:access_token_lock:{app_id}"
        self.lock_timeout_s = 20.0
        self.request_timeout_s = 10.0  # one API call; a slow WeChat counts as a failed attempt
        self.media_timeout_s = 30.0    # one media/get download (photos are megabytes)
        self.download_retry_delays: tuple[float, ...] = (0.5, 2.0)  # then the user is asked again

    # -- access token
    @redis_guard
    async def access_token(self) -> str:
        """The cached token, fetched when absent (it expires from Redis before WeChat's)."""
        cached = await self.redis.get(self.token_key)
        if cached:
            return cached.decode() if isinstance(cached, bytes) else str(cached)
        return await self.refresh_token(stale=None)

    @redis_guard
    async def refresh_token(self, stale: str | None) -> str:
        """Fetch a new token unless another process already replaced ``stale``."""
        async with held_lock(self.redis, self.lock_key, timeout=self.lock_timeout_s, sleep=0.05,
                             what="wechat token lock",
                             on_timeout=WechatApiError("timed out waiting for the access-token refresher")):
            cached = await self.redis.get(self.token_key)
            if cached:
                token = cached.decode() if isinstance(cached, bytes) else str(cached)
                if token != stale:
                    return token  # someone refreshed while we waited
            token, expires_in = await self._fetch_token()
            ttl = max(60, expires_in - TOKEN_MARGIN_S)
            await self.redis.set(self.token_key, token, ex=ttl)
            log.info("wechat access token refreshed", extra={"expires_in": expires_in})
            return token

    async def _fetch_token(self) -> tuple[str, int]:
        if not self.config.app_id or not self.config.app_secret:
            raise WechatApiError("WECHAT_APP_ID / WECHAT_APP_SECRET are not configured")
        data = await self._request("GET", "token", params={
            "grant_type": "client_credential", "appid": self.config.app_id,
            "secret": self.config.app_secret})
        assert isinstance(data, dict)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise WechatApiError("token answer without access_token", int(data.get("errcode") or 0))
        return token, int(data.get("expires_in") or 7200)

    # -- calls
    async def _request(self, method: str, path: str, *, params: dict[str, str],
                       body: dict[str, Any] | None = None, raw: bool = False,
                       max_bytes: int = 1024 * 1024) -> dict[str, Any] | bytes:
        url = self.base + path
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else None
        try:
            timeout = aiohttp.ClientTimeout(total=self.media_timeout_s if raw else self.request_timeout_s)
            async with self.session.request(method, url, params=params, data=data, headers=headers,
                                            timeout=timeout) as response:
                if response.status >= 400:
                    raise WechatApiError(f"{path}: HTTP {response.status}")
                content = await read_limited(response, max_bytes)  # all of it, not one read
                content_type = response.headers.get("Content-Type", "")
        except AnswerTooLarge as exc:
            raise WechatApiError(f"{path}: answer too large ({exc.detail})", TOO_LARGE_ERRCODE) from exc
        except AnswerIncomplete as exc:
            raise WechatApiError(f"{path}: answer cut off ({exc.detail})") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise WechatApiError(f"{path}: {exc.__class__.__name__}") from exc
        is_json = "json" in content_type or "text/plain" in content_type or content[:1] == b"{"
        if raw and not is_json:
            return content
        try:
            answer = json.loads(content)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WechatApiError(f"{path}: answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise WechatApiError(f"{path}: answer is not a JSON object")
        errcode = int(answer.get("errcode") or 0)
        if errcode:
            raise WechatApiError(f"{path}: errcode {errcode} {answer.get('errmsg', '')}", errcode)
        return answer

    async def call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                   body: dict[str, Any] | None = None, raw: bool = False,
                   max_bytes: int = 1024 * 1024) -> dict[str, Any] | bytes:
        """Call an API with the access token; one refresh and retry on 40001/42001."""
        token = await self.access_token()
        for attempt in (1, 2):
            try:
                return await self._request(method, path, params={**(params or {}), "access_token": token},
                                           body=body, raw=raw, max_bytes=max_bytes)
            except WechatApiError as exc:
                if exc.errcode not in TOKEN_ERRORS or attempt == 2:
                    raise
                log.warning("wechat access token rejected (%s); refreshing", exc.errcode)
                token = await self.refresh_token(stale=token)
        raise AssertionError("unreachable")

    async def download_media(self, media_id: str) -> bytes:
        """A temporary media file (a user's photo) by its MediaId, whole.

        A download that fails on the way (dropped, cut off, timed out, WeChat busy) is
        fetched again after ``download_retry_delays``; too large or a bad MediaId is not."""
        delays = self.download_retry_delays
        for attempt in range(len(delays) + 1):
            if attempt:
                await asyncio.sleep(delays[attempt - 1])
            try:
                content = await self.call("GET", "media/get", params={"media_id": media_id}, raw=True,
                                          max_bytes=self.max_media_bytes)
            except WechatApiError as exc:
                if exc.errcode not in RETRY_MEDIA_ERRORS or attempt == len(delays):
                    raise
                log.warning("wechat media download failed (attempt %d): %s; fetching again",
                            attempt + 1, exc.detail)
                continue
            if not isinstance(content, bytes) or not content:
                raise WechatApiError("media/get returned no file")
            return content
        raise AssertionError("unreachable")

    async def send_text(self, openid: str, text: str) -> None:
        """One customer-service text message (``message/custom/send``)."""
        await self.call("POST", "message/custom/send", body={
            "touser": openid, "msgtype": "text", "text": {"content": text}})

    async def send_template(self, openid: str, template_id: str, data: dict[str, str],
                            url: str | None = None) -> None:
        """A template message (``message/template/send``); not bound to the 48-hour window."""
        await self.call("POST", "message/template/send", body=notice_body(openid, template_id, data, "url", url))

    async def send_subscribe(self, openid: str, template_id: str, data: dict[str, str],
                             url: str | None = None) -> None:
        """A subscription notice (订阅通知, ``message/subscribe/bizsend``)."""
        await self.call("POST", "message/subscribe/bizsend",
                        body=notice_body(openid, template_id, data, "page", url))

    async def create_menu(self, buttons: list[dict[str, Any]]) -> None:
        """Publish the official account's custom menu (``menu/create``)."""
        await self.call("POST", "menu/create", body={"button": buttons})


def validate_menu(buttons: list[dict[str, Any]]) -> list[str]:
    """Problems with a menu definition (WeChat's limits: 3 buttons, 5 sub-buttons each)."""
    problems: list[str] = []
    if not 1 <= len(buttons) <= 3:
        problems.append("the menu needs 1 to 3 top-level buttons")
    for button in buttons:
        name = str(button.get("name", ""))
        if not name or len(name.encode()) > 16:
            problems.append(f"top-level name {name!r} must be 1-16 bytes")
        subs = button.get("sub_button")
        if subs is not None:
            if not 1 <= len(subs) <= 5:
                problems.append(f"{name!r} needs 1 to 5 sub-buttons")
            items = subs
        else:
            items = [button]
        for item in items:
            if subs is not None and len(str(item.get("name", "")).encode()) > 60:
                problems.append(f"sub-button name {item.get('name')!r} is longer than 60 bytes")
            kind = item.get("type")
            if kind == "click" and not item.get("key"):
                problems.append(f"click button {item.get('name')!r} needs a key")
            elif kind == "view" and not item.get("url"):
                problems.append(f"view button {item.get('name')!r} needs a url")
            elif kind not in ("click", "view"):
                problems.append(f"button {item.get('name')!r} needs type click or view")
    return problems


async def publish_menu(settings: Settings, redis: Any) -> None:
    """Publish ``wechat.menu`` from the configuration (``python -m bot wechat menu``)."""
    buttons = settings.wechat.menu
    problems = validate_menu(buttons)
    if problems:
        raise ConfigError("wechat.menu: " + "; ".join(problems))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        await WechatApi(settings, redis, session).create_menu(buttons)


# ---------------------------------------------------------------- reminders


class WechatReminders:
    """Sends reminders as template messages (or subscription notices): these reach a user
    long after the 48-hour window of customer-service messages."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self._session: aiohttp.ClientSession | None = None

    async def send(self, openid: str, reminder: Reminder) -> None:
        config = self.settings.wechat
        if not config.reminder_template_id:
            raise ReminderSendError("wechat.reminder_template_id (WECHAT_REMINDER_TEMPLATE_ID) is not set")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        api = WechatApi(self.settings, self.redis, self._session)
        values = reminder.said_fields()
        data = {name: values[key] for key, name in config.reminder_fields.items() if key in values}
        url = config.reminder_url or (f"{self.settings.server.public_base_url.rstrip('/')}/"
                                      if self.settings.server.public_base_url else None)
        try:
            if config.reminder_mode == "subscribe":
                await api.send_subscribe(openid, config.reminder_template_id, data, url)
            else:
                await api.send_template(openid, config.reminder_template_id, data, url)
        except WechatApiError as exc:
            # 43004 unsubscribed, 40003 bad openid, 40037 bad template id, 43101 refused notices
            raise ReminderSendError(exc.detail, permanent=exc.errcode in {40003, 40037, 43004, 43101}) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
