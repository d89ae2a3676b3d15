"""The pipeline: a chain of middleware around the router (bolt-style ``next()``).

Each middleware is ``async def step(turn, next_step) -> None``; it may stop the chain
by not calling ``next_step`` (a duplicate, a rate limit, a person in charge). The
router at the end fills ``turn.replies``. Nothing here sends: adapters render
``turn.replies`` and the outbox delivers later replies.

Middlewares that only need Redis at the edges of a turn (de-duplication, rate limit,
per-chat lock, conversation state) are :class:`BatchedStep` objects: before the chain
runs, each queues its reads and claims on one pipeline (``prepare``); after it ran, each
queues its writes on a second one (``finish``). A turn therefore costs two Redis round
trips instead of one or two per middleware. Redis runs one connection's commands in
order, so the conversation is read after the lock is taken and saved before it is
released; no ``MULTI`` is needed for that.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.conversation import Conversation
from bot.core.errors import StorageUnavailable
from bot.core.messages import InboundMessage, Reply
from bot.core.services import CoreServices
from bot.core.storage.redis import REDIS_ERRORS
from bot.core.understanding import ParseResult

log = logging.getLogger("bot.turn")


@dataclass
class Turn:
    """One inbound message on its way through the pipeline."""

    msg: InboundMessage
    services: CoreServices
    conversation: Conversation | None = None
    parse: ParseResult | None = None
    replies: list[Reply] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "answered"
    request_id: str = field(default_factory=lambda: secrets.token_hex(6))
    deferred: bool = False  # the answer will come through the outbox
    # Results of the opening Redis batch, by the names the batched steps gave them.
    prefetched: dict[str, Any] = field(default_factory=dict)
    # Set by a step that had to wait after the opening batch (for the chat lock): what the
    # batch read may have changed since, so steps read it again.
    prefetch_stale: bool = False
    # Set when this message asked for another language ("藏文", "中文"): the router answers
    # a message that only asked that with the menu in the new language.
    language_switch: str | None = None
    # Writes the caller adds to the closing Redis batch of a turn that did not fail (the web
    # chat's page history): no round trip of their own.
    closing_writes: list[Callable[[Turn, RedisBatch], None]] = field(default_factory=list)

    def say(self, text: str, options: Sequence[str] = ()) -> None:
        self.replies.append(Reply(text=text, options=list(options)))


NextStep = Callable[[], Awaitable[None]]
Middleware = Callable[[Turn, NextStep], Awaitable[None]]
Handler = Callable[[Turn], Awaitable[None]]


class RedisBatch:
    """Commands queued by several steps, sent in one round trip; results kept by name."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.names: list[str | None] = []

    def add(self, name: str | None, method: str, *args: Any, **kwargs: Any) -> None:
        """Queue ``pipe.<method>(*args, **kwargs)``; its result goes to ``turn.prefetched[name]``."""
        getattr(self.pipe, method)(*args, **kwargs)
        self.names.append(name)


class BatchedStep:
    """A middleware that does its Redis work in the pipeline's opening and closing batches."""

    def prepare(self, turn: Turn, batch: RedisBatch) -> None:
        """Queue the reads and claims this step needs before the chain runs."""

    async def __call__(self, turn: Turn, next_step: NextStep) -> None:
        await next_step()

    def finish(self, turn: Turn, batch: RedisBatch, failed: bool) -> None:
        """Queue this step's writes; ``failed`` when the chain raised."""


class Pipeline:
    """Runs the middleware chain and then the handler for each message."""

    def __init__(self, middlewares: Sequence[Middleware], handler: Handler) -> None:
        self.middlewares = list(middlewares)
        self.handler = handler
        self.batched = [m for m in self.middlewares if isinstance(m, BatchedStep)]

    async def _open(self, turn: Turn) -> None:
        """One round trip for everything the batched steps read or claim."""
        try:
            async with turn.services.redis.pipeline(transaction=False) as pipe:
                batch = RedisBatch(pipe)
                for step in self.batched:
                    step.prepare(turn, batch)
                results = await pipe.execute() if batch.names else []
        except REDIS_ERRORS as exc:
            log.error("redis unavailable: %s", exc.__class__.__name__)
            raise StorageUnavailable(f"redis: {exc}") from exc
        turn.prefetched.update((name, value) for name, value in zip(batch.names, results, strict=True) if name)

    async def _close(self, turn: Turn, failed: bool) -> None:
        """One round trip for the writes, innermost step first (save, unlock, remember)."""
        try:
            async with turn.services.redis.pipeline(transaction=False) as pipe:
                batch = RedisBatch(pipe)
                for step in reversed(self.batched):
                    step.finish(turn, batch, failed)
                if not failed:
                    for write in turn.closing_writes:
                        write(turn, batch)
                if batch.names:
                    await pipe.execute()
        except REDIS_ERRORS as exc:
            log.error("redis unavailable at the end of a turn: %s", exc.__class__.__name__,
                      extra={"request_id": turn.request_id})
            if not failed:  # the turn's state was not saved: say so (503), never forget silently
                raise StorageUnavailable(f"redis: {exc}") from exc

    async def _chain(self, turn: Turn) -> None:
        async def call(index: int) -> None:
            if index == len(self.middlewares):
                await self.handler(turn)
                return
            await self.middlewares[index](turn, lambda: call(index + 1))

        if self.batched:
            await self._open(turn)
        try:
            await call(0)
        except BaseException:
            if self.batched:
                await asyncio.shield(self._close(turn, failed=True))
            raise
        if self.batched or turn.closing_writes:
            try:
                await self._close(turn, failed=False)
            except BaseException:
                # The writes could not even be sent (e.g. a value Redis cannot take): still
                # release the lock and the dedup marker, or the chat waits for the lock timeout.
                await asyncio.shield(self._close(turn, failed=True))
                raise

    async def run(self, turn: Turn) -> Turn:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(turn.services.settings.conversation.turn_timeout_s):
                await self._chain(turn)
        except TimeoutError as exc:
            turn.outcome = "timeout"
            raise StorageUnavailable("the turn timed out (storage not answering)") from exc
        except Exception:
            turn.outcome = "error"
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics = turn.services.metrics
            metrics.messages.labels(turn.msg.channel, turn.outcome).inc()
            metrics.turn_latency.labels(turn.msg.channel).observe(elapsed)
            if turn.outcome == "fallback":
                metrics.nlu_fallbacks.inc()
            log.info(
                "turn",
                extra={
                    "request_id": turn.request_id,
                    "channel": turn.msg.channel,
                    "user": _mask_user(turn.msg.user_id),
                    "latency_ms": round(elapsed * 1000, 2),
                    "outcome": turn.outcome,
                    "intent": turn.parse.intent() if turn.parse else None,
                },
            )
        return turn


def _mask_user(user_id: str) -> str:
    """Chat identities are pseudonymous but still trimmed in logs."""
    return user_id[:4] + "…" if len(user_id) > 6 else user_id
