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


def mask(text: str) -> str:
    """Mask ID numbers (first 6 and last 4 kept) and mobile numbers in free text."""
    text = _ID_NUMBER.sub(lambda m: f"{m.group(1)}********{m.group(2)[-4:]}"[:6] + "********"
                          + m.group(2)[-4:], text)
    return _PHONE.sub(r"\1****\2", text)


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


def mask_name(name: str) -> str:
    """张桂兰 -> 张*兰, 张三 -> 张*, 欧阳秀英 -> 欧**英."""
    name = "".join(name.split())
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
