"""One root exception for everything the bot raises on purpose.

The aiohttp error middleware (``bot.app.error_middleware``) is the single place that
turns these into HTTP answers; the chat pipeline turns them into a Chinese message.
"""

from __future__ import annotations

from bot.core.i18n import tr


class BotError(Exception):
    """Root of all deliberate errors. ``status`` is the HTTP status it maps to."""

    status: int = 500
    code: str = "internal_error"
    user_message = tr("系统出了点问题，请稍后再试。")

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None,
                          **kwargs: object) -> None:
        """``class NotFound(BotError, status=404, code="not_found")`` sets the HTTP mapping."""
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code
        if user_message is not None:
            self.user_message = user_message


class ConfigError(BotError, code="config_error"):
    """The configuration is invalid; start-up stops with this message."""


class BadRequest(BotError, status=400, code="bad_request"):
    """The client sent something we cannot accept (4xx)."""

    user_message = tr("没有看懂这条消息，请重新发送。")

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None,
                 user_message: str | None = None) -> None:
        super().__init__(detail, user_message=user_message)
        if code:
            self.code = code
        if status:
            self.status = status


class Unauthorized(BotError, status=401, code="unauthorized"):
    user_message = tr("请先登录。")


class Forbidden(BotError, status=403, code="forbidden"):
    user_message = tr("没有权限。")


class NotFound(BotError, status=404, code="not_found"):
    user_message = tr("没有找到。")


class RateLimited(BotError, status=429, code="rate_limited"):
    user_message = tr("您发得太快了，请稍等一分钟再发。")


class AddressLimited(RateLimited):
    """Too many new chats or messages from one client address (``rate_limit.per_address``)."""

    user_message = tr("您所在的网络发来的消息太多了，请过一两分钟再试。")


class StorageUnavailable(BotError, status=503, code="storage_unavailable"):
    """Redis or the database cannot be reached. Never swallowed: 503 plus a log line."""

    user_message = tr("系统正在维护，暂时无法处理，请稍后再试。")


class DatabaseUnavailable(StorageUnavailable, code="database_unavailable"):
    user_message = tr("这项服务暂时用不了，请稍后再试。您的其他问题可以继续问我。")


class ExternalServiceError(BotError, status=502, code="external_service_error"):
    """A platform API (WeChat, Telegram, Rasa) failed."""

