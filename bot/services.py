"""Everything a turn may need, created once per application in ``cleanup_ctx``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from bot.core.config import Settings
from bot.core.conversation import ConversationStore
from bot.core.errors import DatabaseUnavailable
from bot.core.messages import InboundMessage, Reply
from bot.core.metrics import Metrics
from bot.core.outbox import Outbox
from bot.core.pipeline import Pipeline, RedisBatch, Turn
from bot.core.services import FaceJobs
from bot.core.storage.db import Database
from bot.core.understanding import NluBackend, ParseResult
from bot.records.cases import HandoffService
from bot.records.events import CertificationEvents
from bot.records.pensioners import PensionerRegistry
from bot.safety import ensure_utf8
from dialogs.catalog import all_dialogs
from dialogs.engine import ChatServices, DialogEngine, DialogRegistry
from faq.knowledge import KnowledgeBase
from handlers.middleware import DEFAULT_CHAIN
from handlers.router import Router
from nlu import entities
from nlu.embedded import EmbeddedNlu
from nlu.rasa_backend import RasaNlu
from nlu.rules import match_command

log = logging.getLogger(__name__)
AUDIT_BACKLOG = "audit:backlog"


@dataclass
class Services:
    """The long-lived parts, shared by all turns of one process."""

    settings: Settings
    redis: aioredis.Redis
    db: Database
    conversations: ConversationStore
    outbox: Outbox
    nlu: NluBackend
    faq: KnowledgeBase
    dialogs: DialogRegistry
    handoff: HandoffService
    registry: PensionerRegistry
    pipeline: Pipeline | None = None
    metrics: Metrics = field(default_factory=Metrics)
    face: FaceJobs | None = None  # set by bot.face_service while the app runs
    events: CertificationEvents = field(init=False)  # the dashboard's step records (issue 22)

    def __post_init__(self) -> None:
        self.events = CertificationEvents(self.db, self.metrics, self.settings.staff.timezone)
        self.handoff.events = self.events

    async def understand(self, text: str) -> ParseResult:
        """NLU parse; a failing backend is logged and the rules still apply.

        The rules run here, once: the command check and the rule entities, which are added
        to the backend's own entities (Rasa's) where it did not find the same one.
        """
        command = match_command(text)
        found = entities.extract(text)
        if command is not None:
            return ParseResult(text=text, intents=[command], entities=found, backend="rules")
        try:
            result = await self.nlu.parse(text, rules_applied=True)
        except Exception as exc:  # noqa: BLE001 - logged loudly, then FAQ retrieval still answers
            log.error("nlu backend %s failed: %s", self.nlu.name, exc.__class__.__name__)
            result = ParseResult(text=text, backend="none")
        known = {(e.type, e.value) for e in result.entities}
        result.entities.extend(e for e in found if (e.type, e.value) not in known)
        return result

    async def handle(self, msg: InboundMessage,
                     closing_writes: Sequence[Callable[[Turn, RedisBatch], None]] = ()) -> Turn:
        """Run one inbound message through the pipeline (text that cannot be stored: 400).

        ``closing_writes`` queue the caller's own Redis writes on the turn's closing batch."""
        assert self.pipeline is not None
        ensure_utf8([msg.user_id, msg.message_id, msg.text, msg.voice_transcript, msg.event])
        return await self.pipeline.run(Turn(msg=msg, services=self, closing_writes=list(closing_writes)))

    async def push(self, conversation_key: str, replies: list[Reply]) -> None:
        await self.outbox.push(conversation_key, replies)

    async def audit(self, actor: str, action: str, target: str | None = None, **details: Any) -> None:
        """Write an audit line; while the database is down, keep it in Redis until it returns."""
        entry = {"actor": actor, "action": action, "target": target, "details": details,
                 "at": time.time()}
        try:
            await self._flush_audit_backlog()
            await self.db.audit(actor, action, target, **details)
        except DatabaseUnavailable:
            log.error("audit kept in redis until the database returns", extra={"action": action})
            await self.redis.rpush(AUDIT_BACKLOG, json.dumps(entry, ensure_ascii=False, default=str))  # type: ignore[misc]

    async def _flush_audit_backlog(self) -> None:
        while True:
            raw = await self.redis.lindex(AUDIT_BACKLOG, 0)  # type: ignore[misc]
            if raw is None:
                return
            entry = json.loads(raw)
            details = dict(entry["details"], logged_at=entry["at"])
            await self.db.audit(entry["actor"], entry["action"], entry["target"], **details)
            await self.redis.lpop(AUDIT_BACKLOG)  # type: ignore[misc]


def build_dialogs() -> DialogRegistry:
    """Every dialog the product has."""
    return all_dialogs()


def build_pipeline(services: Services) -> Pipeline:
    return Pipeline(DEFAULT_CHAIN, Router(DialogEngine(services.dialogs)))


def build_nlu(settings: Settings) -> NluBackend:
    """The NLU backend named by ``nlu.backend`` in config.yml."""
    if settings.nlu.backend == "rasa":
        return RasaNlu(settings.nlu.rasa_url, settings.nlu.rasa_timeout_s)
    return EmbeddedNlu()


def as_chat_services(services: Services) -> ChatServices:
    """Typed check (mypy) that :class:`Services` provides what dialogs and handlers use."""
    return services
