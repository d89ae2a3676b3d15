"""What a turn may use, as typed protocols: the foundation's view of the app's services.

The concrete :class:`bot.services.Services` (assembly) satisfies these structurally. Layers
above add what they need on top (``dialogs.engine.ChatServices``), each naming only types
from its own layer or below, so no module has to import the assembly to be typed.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis

from bot.core.config import Settings
from bot.core.conversation import ConversationStore
from bot.core.messages import Reply
from bot.core.metrics import Metrics
from bot.core.outbox import Outbox
from bot.core.storage.db import Database
from bot.core.understanding import ParseResult


@dataclass(frozen=True)
class FaceBacklog:
    """How long the face queue is: selfies waiting or being checked, and the expected wait
    (seconds) for one more, from how fast verdicts have been coming (None: unknown)."""

    waiting: int
    wait_s: float | None


class FaceJobs(Protocol):
    """Queues a selfie for verification by a face worker; returns the job id."""

    def submit(self, request: dict[str, Any]) -> Awaitable[str]: ...

    def backlog(self) -> Awaitable[FaceBacklog]: ...


class CoreServices(Protocol):
    """The long-lived parts every step of a turn may use."""

    settings: Settings
    redis: aioredis.Redis
    db: Database
    conversations: ConversationStore
    outbox: Outbox
    metrics: Metrics
    face: FaceJobs | None

    async def understand(self, text: str) -> ParseResult: ...

    async def audit(self, actor: str, action: str, target: str | None = None,
                    **details: Any) -> None: ...

    async def push(self, conversation_key: str, replies: list[Reply]) -> None: ...
