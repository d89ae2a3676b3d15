"""Structured logging: one JSON line per record, personal data masked."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

_ID_NUMBER = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# A Telegram bot token (digits:secret) wherever it appears, e.g. in /bot<token>/getMe URLs.
_BOT_TOKEN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")
HTTP_CLIENT_LOGGERS = ("httpx", "httpcore")
BOT_LOGGERS = ("telegram.Bot", "telegram.ext.ExtBot")  # PTB logs its API URL at DEBUG


def mask(text: str) -> str:
    """Mask ID numbers (first 6 and last 4 kept) and mobile numbers in free text."""
    text = _ID_NUMBER.sub(lambda m: f"{m.group(1)}********{m.group(2)[-4:]}"[:6] + "********"
                          + m.group(2)[-4:], text)
    return _PHONE.sub(r"\1****\2", redact_secrets(text))


def redact_secrets(text: str) -> str:
    """Replace bot tokens (in API URLs and elsewhere) by ``<token>``."""
    return _BOT_TOKEN.sub("<token>", text)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message without secrets before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACT = RedactSecrets()


def quiet_http_clients() -> None:
    """httpx/httpcore (python-telegram-bot's HTTP client) log request URLs, which carry the
    bot token: keep them at WARNING and redact whatever they still log."""
    for name in HTTP_CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level in (logging.NOTSET,) or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)
    for name in BOT_LOGGERS:
        if _REDACT not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_REDACT)


def mask_id_number(id_number: str) -> str:
    return id_number[:6] + "*" * 8 + id_number[-4:] if len(id_number) == 18 else "***"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = mask(value) if isinstance(value, str) else value
        if record.exc_info:
            data["exc"] = mask(self.formatException(record.exc_info))
        return orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    quiet_http_clients()


def mask_name(name: str) -> str:
    """张桂兰 -> 张*兰, 张三 -> 张*, 欧阳秀英 -> 欧**英."""
    name = "".join(name.split())
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
