"""Conversation state, kept in Redis and read and written on every turn.

A conversation is a JSON document at ``conv:{channel}:{user}`` whose TTL is the idle
timeout while the bot is in charge. While a person is involved (``waiting``/``human``)
it does not expire. A second key, ``seen:...``, outlives it so a returning user can be
greeted as such after the conversation timed out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import orjson
import redis.asyncio as aioredis

from bot.core.storage.redis import redis_guard

log = logging.getLogger(__name__)


class Mode(StrEnum):
    """Who is in charge of a chat: ``bot -> waiting -> human -> closed -> bot``."""

    BOT = "bot"  # the assistant answers
    WAITING = "waiting"  # queued for a person
    HUMAN = "human"  # a staff member has the chat
    CLOSED = "closed"  # a person just finished; the next message returns to the bot


MODES = tuple(mode.value for mode in Mode)
# The transitions the product makes (anything else is logged: it points at a bug).
TRANSITIONS: dict[Mode, frozenset[Mode]] = {
    Mode.BOT: frozenset({Mode.WAITING, Mode.HUMAN}),  # escalate; staff pull a chat
    Mode.WAITING: frozenset({Mode.BOT, Mode.HUMAN, Mode.CLOSED, Mode.WAITING}),
    Mode.HUMAN: frozenset({Mode.BOT, Mode.CLOSED, Mode.HUMAN, Mode.WAITING}),
    Mode.CLOSED: frozenset({Mode.BOT, Mode.WAITING, Mode.HUMAN}),
}
RECENT_KEY = "handoff:recent"  # sorted set: conversation key -> last message time (staff live list)
RECENT_KEEP_S = 86400  # the live list shows chats active within this time...
RECENT_LIMIT = 500  # ...and keeps at most this many
SEEN_TTL_S = 30 * 86400


def chat_lock_key(conversation_key: str) -> str:
    """The Redis lock that lets one turn at a time run for a chat (pipeline, verdicts, staff)."""
    return f"lock:{conversation_key}"


@dataclass
class Frame:
    """One active dialog: where it is and what it has collected."""

    dialog: str
    state: str
    slots: dict[str, Any] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    updated_at: float = field(default_factory=time.time)


@dataclass
class Conversation:
    """Everything the bot remembers about one chat."""

    key: str
    mode: Mode = Mode.BOT  # written only through ``switch_mode``
    stack: list[Frame] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    misunderstood: int = 0
    case_id: int | None = None
    started_at: float = field(default_factory=time.time)
    turns: int = 0
    language: str = "zh"  # the language replies are rendered in (bot.core.i18n.LANGUAGES)
    # Not persisted: how this turn found the conversation.
    is_new: bool = field(default=False, compare=False)
    returning: bool = field(default=False, compare=False)

    @property
    def frame(self) -> Frame | None:
        return self.stack[-1] if self.stack else None

    @property
    def channel(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def user_id(self) -> str:
        return self.key.split(":", 1)[1]

    def switch_mode(self, mode: Mode | str) -> None:
        """The one writer of ``mode``: every change of who is in charge goes through here."""
        new = Mode(mode)
        if new is not self.mode and new not in TRANSITIONS[self.mode]:
            log.warning("unexpected mode change %s -> %s", self.mode.value, new.value)
        self.mode = new

    def log(self, role: str, text: str, limit: int) -> None:
        """Append to the transcript kept for staff, trimmed to ``limit`` entries."""
        self.transcript.append({"role": role, "text": text, "at": round(time.time(), 3)})
        if limit and len(self.transcript) > limit:
            del self.transcript[: len(self.transcript) - limit]

    def to_json(self) -> bytes:
        """UTF-8 JSON (orjson: this runs twice per turn on a document of several KB)."""
        data = {name: getattr(self, name) for name in _PERSISTED}
        data["stack"] = [vars(frame) for frame in self.stack]
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def from_json(cls, key: str, raw: str | bytes) -> Conversation:
        data = orjson.loads(raw)
        data["key"] = key
        data["stack"] = [Frame(**frame) for frame in data.get("stack", [])]
        data["mode"] = Mode(data.get("mode", Mode.BOT))
        known = {f for f in cls.__dataclass_fields__ if f not in ("is_new", "returning")}
        return cls(**{k: v for k, v in data.items() if k in known})


_PERSISTED = tuple(f.name for f in fields(Conversation) if f.name not in ("key", "is_new", "returning"))


def recent_commands(conversation_key: str) -> list[tuple[str, tuple[Any, ...]]]:
    """(command, arguments) that put a chat at the top of the staff's live list."""
    return [("zadd", (RECENT_KEY, {conversation_key: time.time()})),
            ("zremrangebyrank", (RECENT_KEY, 0, -RECENT_LIMIT - 1))]


def mark_recent(pipe: Any, conversation_key: str) -> None:
    """Queue the commands that put a chat at the top of the staff's live list."""
    for method, args in recent_commands(conversation_key):
        getattr(pipe, method)(*args)


class ConversationStore:
    """Loads and saves conversations in Redis."""

    def __init__(self, redis: aioredis.Redis, idle_timeout_s: int) -> None:
        self.redis = redis
        self.idle_timeout_s = idle_timeout_s

    @staticmethod
    def _key(conversation_key: str) -> str:
        return f"conv:{conversation_key}"

    def load_commands(self, conversation_key: str) -> list[tuple[str, str, tuple[Any, ...]]]:
        """(result name, command, arguments) that read a conversation; see ``from_results``."""
        return [("conv_raw", "get", (self._key(conversation_key),)),
                ("conv_seen", "exists", (f"seen:{conversation_key}",))]

    @staticmethod
    def from_results(conversation_key: str, raw: str | bytes | None, seen: int) -> Conversation:
        """The conversation from what ``load_commands`` read (a new one when none was kept)."""
        if raw is not None:
            return Conversation.from_json(conversation_key, raw)
        conversation = Conversation(key=conversation_key)
        conversation.is_new = True
        conversation.returning = bool(seen)
        return conversation

    def save_commands(self, conversation: Conversation) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        """(command, arguments, keyword arguments) that store a conversation."""
        ttl = self.idle_timeout_s if conversation.mode in ("bot", "closed") else None
        commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            ("set", (self._key(conversation.key), conversation.to_json()), {"ex": ttl}),
            *((method, args, {}) for method, args in recent_commands(conversation.key)),
        ]
        if conversation.is_new:  # remembered for SEEN_TTL_S after the start of a conversation
            commands.append(("set", (f"seen:{conversation.key}", "1"), {"ex": SEEN_TTL_S}))
        return commands

    @redis_guard
    async def load(self, conversation_key: str) -> Conversation:
        """Read one conversation (a new one when none is kept)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, method, args in self.load_commands(conversation_key):
                getattr(pipe, method)(*args)
            raw, seen = await pipe.execute()
        return self.from_results(conversation_key, raw, seen)

    @redis_guard
    async def save(self, conversation: Conversation) -> None:
        """Store one conversation (and put it at the top of the staff's live list)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for method, args, kwargs in self.save_commands(conversation):
                getattr(pipe, method)(*args, **kwargs)
            await pipe.execute()

    @redis_guard
    async def delete(self, conversation_key: str) -> None:
        await self.redis.delete(self._key(conversation_key))
