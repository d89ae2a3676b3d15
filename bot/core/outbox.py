"""Replies produced outside a request (face verdicts, staff messages, reminders).

Each channel registers a sender; ``Outbox.push`` routes replies for a conversation to
its channel. The web channel's sender queues them in Redis for ``/api/chat/updates``.
A platform sender retries on its own; when it finally gives up it records the failure
(audit action ``send_failed``, listed in the staff console) and raises ``DeliveryFailed``,
which ``push`` turns into ``False`` for callers that only need to know.

A web push also publishes the chat's key on the database's ``READY_CHANNEL`` (in the same
transaction); :class:`ReplyBell` wakes the requests held for that chat (long polling)
instead of each of them asking Redis every fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager

import redis.asyncio as aioredis

from bot.core.errors import ExternalServiceError
from bot.core.i18n import ZH, language_of_state, tr
from bot.core.messages import Reply
from bot.core.storage.redis import REDIS_ERRORS, redis_guard

log = logging.getLogger(__name__)
# A sender gets the conversation key ("channel:user") and the replies.
Sender = Callable[[str, Sequence[Reply]], Awaitable[None]]
WEB_QUEUE_LIMIT = 200
WEB_QUEUE_TTL_S = 7 * 86400
SEND_FAILED = "send_failed"  # the audit action of a message a channel could not deliver
READY_CHANNEL = "outbox:ready:{db}"  # pub/sub: the key of a chat whose web queue got replies
BELL_RETRY_S = 1.0  # wait before subscribing again after the subscription failed


class DeliveryFailed(ExternalServiceError):
    """A channel gave up delivering a message (already retried, logged and recorded)."""

    code = "delivery_failed"
    user_message = (tr("消息已保存，但没能送到用户那里（对方渠道发送失败），已记在“发送失败”里。"
                    "请稍后再发一次，或者打电话联系用户。"))


class Outbox:
    """Routes pushed replies to the sender of the user's channel."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.senders: dict[str, Sender] = {"web": self._queue_for_web, "cli": self._queue_for_web}

    def register(self, channel: str, sender: Sender) -> None:
        self.senders[channel] = sender

    async def push(self, conversation_key: str, replies: Sequence[Reply]) -> bool:
        """Deliver replies to ``channel:user`` through that channel's sender.

        False when the channel gave up (the sender has recorded the failure)."""
        if not replies:
            return True
        if any(reply.unrendered for reply in replies):
            language = await self.language_of(conversation_key)
            replies = [reply.localized(language) for reply in replies]
        channel = conversation_key.split(":", 1)[0]
        sender = self.senders.get(channel)
        if sender is None:
            log.error("no sender for channel %s; queueing for polling", channel)
            sender = self._queue_for_web
        try:
            await sender(conversation_key, replies)
        except DeliveryFailed:
            return False
        return True

    async def language_of(self, conversation_key: str) -> str:
        """The language of the chat (kept in its conversation state; Chinese when unknown)."""
        try:
            raw = await self.redis.get(f"conv:{conversation_key}")
        except REDIS_ERRORS as exc:  # the sender will meet the same trouble and report it
            log.warning("no language for %s: %s", conversation_key.split(":", 1)[0], exc.__class__.__name__)
            return ZH
        return language_of_state(raw)

    @redis_guard
    async def _queue_for_web(self, conversation_key: str, replies: Sequence[Reply]) -> None:
        queue = f"outbox:{conversation_key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(queue, *[json.dumps(r.to_json(), ensure_ascii=False) for r in replies])
            pipe.ltrim(queue, -WEB_QUEUE_LIMIT, -1)
            pipe.expire(queue, WEB_QUEUE_TTL_S)
            pipe.publish(ready_channel(self.redis), conversation_key)
            await pipe.execute()

    @redis_guard
    async def waiting(self, conversation_key: str) -> int:
        """How many replies are queued for a polling client (one cheap command)."""
        return int(await self.redis.llen(f"outbox:{conversation_key}"))  # type: ignore[misc]

    @redis_guard
    async def drain(self, conversation_key: str) -> list[Reply]:
        """Take every queued reply for a polling client (atomically)."""
        queue = f"outbox:{conversation_key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(queue, 0, -1)
            pipe.delete(queue)
            items, _ = await pipe.execute()
        return [Reply.from_json(json.loads(item)) for item in items]


def ready_channel(redis: aioredis.Redis) -> str:
    """The bell's channel for this Redis database (pub/sub channels span the databases)."""
    return READY_CHANNEL.format(db=redis.connection_pool.connection_kwargs.get("db", 0))


class ReplyBell:
    """Wakes the requests of this process that wait for a chat's queued replies.

    One pub/sub subscription to the ready channel per process (:meth:`run`, a background
    task that subscribes again after a failure). A waiter still looks for itself now and
    then (the caller's timeout), so a lost message or subscription costs latency, never a
    reply."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.failures = 0  # times the subscription was lost

    @contextmanager
    def waiting(self, conversation_key: str) -> Iterator[asyncio.Event]:
        """An event set when replies are queued for ``conversation_key``."""
        event = asyncio.Event()
        waiters = self._waiters.setdefault(conversation_key, set())
        waiters.add(event)
        try:
            yield event
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(conversation_key, None)

    def ring(self, conversation_key: str) -> None:
        """Wake every local waiter of ``conversation_key``."""
        for event in self._waiters.get(conversation_key, ()):
            event.set()

    async def run(self) -> None:
        """Listen until cancelled; a lost subscription is logged and made again."""
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - waiters fall back to looking; logged
                self.failures += 1
                log.warning("reply bell: subscription lost (%s); subscribing again",
                            exc.__class__.__name__)
                await asyncio.sleep(BELL_RETRY_S)

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(ready_channel(self.redis))
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    self.ring(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            await pubsub.aclose()
