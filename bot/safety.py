"""Input checks every channel shares: text that can be stored, JSON that can be parsed.

A string with a lone surrogate (``"\\udc00"``) is valid Python but not valid UTF-8: Redis,
the database and the log would all fail on it halfway through a turn. Such input is refused
with a 400 before anything is written. Deeply nested JSON makes ``json.loads`` raise
``RecursionError``; that is bad input too, not a server error.
"""

from __future__ import annotations

import json
from typing import Any

from bot.core.errors import BadRequest
from bot.core.i18n import tr

MAX_JSON_DEPTH = 32


def not_utf8(field: str) -> BadRequest:
    return BadRequest(f"{field} is not valid UTF-8 text", code="invalid_text",
                      user_message=tr("消息里有无法识别的字符，请重新输入。"))


def is_utf8(text: str) -> bool:
    """True when ``text`` encodes to UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ensure_utf8(value: Any, field: str = "text") -> None:
    """Raise 400 ``invalid_text`` when a string anywhere in ``value`` is not valid UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not is_utf8(item):
                raise not_utf8(field)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _depth_ok(raw: bytes | str, limit: int) -> bool:
    """Nesting of ``[``/``{`` outside strings stays within ``limit`` (a cheap pre-scan)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:  # the usual case, without a Python loop
        return True
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def loads_json(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for request bodies: broken, too deep or non-UTF-8 JSON is a 400."""
    if not _depth_ok(raw, max_depth):
        raise BadRequest(f"JSON nested deeper than {max_depth}", code="invalid_json",
                         user_message=tr("请求格式不对。"))
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON: {exc.__class__.__name__}", code="invalid_json",
                         user_message=tr("请求格式不对。")) from exc
    ensure_utf8(value)
    return value
