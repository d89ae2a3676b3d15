"""The pipeline: a chain of middleware around the router (bolt-style ``next()``).

Each middleware is ``async def step(turn, next_step) -> None``; it may stop the chain
by not calling ``next_step`` (a duplicate, a rate limit, a person in charge). The
router at the end fills ``turn.replies``. Nothing here sends: adapters render
``turn.replies`` and the outbox delivers later replies.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.conversation import Conversation
from bot.messages import InboundMessage, Reply
from nlu.base import ParseResult

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger("bot.turn")


@dataclass
class Turn:
    """One inbound message on its way through the pipeline."""

    msg: InboundMessage
    services: Services
    conversation: Conversation | None = None
    parse: ParseResult | None = None
    replies: list[Reply] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "answered"
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    deferred: bool = False  # the answer will come through the outbox

    def say(self, text: str, options: Sequence[str] = ()) -> None:
        self.replies.append(Reply(text=text, options=list(options)))


NextStep = Callable[[], Awaitable[None]]
Middleware = Callable[[Turn, NextStep], Awaitable[None]]
Handler = Callable[[Turn], Awaitable[None]]


class Pipeline:
    """Runs the middleware chain and then the handler for each message."""

    def __init__(self, middlewares: Sequence[Middleware], handler: Handler) -> None:
        self.middlewares = list(middlewares)
        self.handler = handler

    async def run(self, turn: Turn) -> Turn:
        async def call(index: int) -> None:
            if index == len(self.middlewares):
                await self.handler(turn)
                return
            await self.middlewares[index](turn, lambda: call(index + 1))

        started = time.perf_counter()
        try:
            await call(0)
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
