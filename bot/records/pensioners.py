"""The pensioner registry: lookups guarded against enumeration, certification records.

Every lookup by ID number is rate limited per chat identity and per client address (where the
channel knows it), wrong names are counted per ID number (Redis), and a caller learns nothing
about an ID unless it also gives the matching name.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, date, datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy import select

from bot.core.config import Settings
from bot.core.errors import RateLimited
from bot.core.i18n import tr
from bot.core.idnumber import with_check_digit
from bot.core.limits import check_chat_and_address
from bot.core.storage.db import Database
from bot.core.storage.models import FaceTemplate, Pensioner
from bot.core.storage.redis import redis_guard
from bot.records.reminders import cancel_pending

CERTIFICATION_PERIOD_DAYS = 365


def next_due_after(certified: datetime) -> date:
    """Certification is due again 12 months later."""
    return (certified + timedelta(days=CERTIFICATION_PERIOD_DAYS)).date()


def names_match(given: str, registered: str) -> bool:
    return "".join(given.split()) == "".join(registered.split())


class LookupLimited(RateLimited):
    user_message = tr("查询次数太多了，为了保护老人的信息安全，请一小时后再试，或回复“转人工”。")


class PensionerRegistry:
    """Finds pensioners by ID number and records certifications."""

    def __init__(self, settings: Settings, db: Database, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis

    async def check_lookup_allowed(self, conversation_key: str, client_address: str | None = None) -> None:
        """Raise LookupLimited when this chat, or the client address it comes from, looked up
        too many ID numbers this hour (never one bucket that everybody shares)."""
        limits = self.settings.rate_limit
        await check_chat_and_address(
            self.redis, "lookup", conversation_key, client_address, per_chat=limits.id_lookups_per_hour,
            per_address=limits.per_address.id_lookups_per_hour, error=LookupLimited,
            details=("id lookup rate limit", "id lookup rate limit of the client address"))

    @staticmethod
    def _failures_key(id_number: str) -> str:
        digest = hashlib.sha256(id_number.upper().encode()).hexdigest()[:24]  # no ID in Redis keys
        return f"rl:idfail:{digest}:{int(time.time() // 3600)}"

    @redis_guard
    async def record_name_mismatch(self, id_number: str) -> None:
        """Count a wrong name given for this ID number (from any chat)."""
        key = self._failures_key(id_number)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 3700)
            await pipe.execute()

    @redis_guard
    async def check_id_not_guessed(self, id_number: str) -> None:
        """Raise LookupLimited when too many wrong names were given for this ID number: one
        ID is protected from name guessing without one global bucket everybody shares."""
        failures = await self.redis.get(self._failures_key(id_number))
        if failures and int(failures) >= self.settings.rate_limit.name_failures_per_id_per_hour:
            raise LookupLimited("too many wrong names for this id number")

    async def find(self, conversation_key: str, id_number: str, *,
                   client_address: str | None = None) -> Pensioner | None:
        """The pensioner with this ID number (rate limited per chat, per client address and
        per ID number). Callers must confirm the name before revealing anything and report a
        wrong one with ``record_name_mismatch``."""
        await self.check_lookup_allowed(conversation_key, client_address)
        await self.check_id_not_guessed(id_number)
        async with self.db.session() as session:
            return await session.scalar(select(Pensioner).where(Pensioner.id_number == id_number))

    async def get(self, pensioner_id: int) -> Pensioner | None:
        async with self.db.session() as session:
            return await session.get(Pensioner, pensioner_id)

    async def is_enrolled(self, pensioner_id: int) -> bool:
        async with self.db.session() as session:
            found = await session.scalar(
                select(FaceTemplate.id).where(FaceTemplate.pensioner_id == pensioner_id))
            return found is not None

    async def mark_certified(self, pensioner_id: int, by: str, at: datetime | None = None) -> date:
        """Record a certification; returns the next due date."""
        at = at or datetime.now(UTC)
        async with self.db.session() as session:
            pensioner = await session.get(Pensioner, pensioner_id)
            assert pensioner is not None
            pensioner.certified_at = at
            pensioner.certified_by = by
            pensioner.next_due = next_due_after(at)
            pensioner.status = "active"
            # reminders about the old due date stop
            await cancel_pending(session, pensioner_id, pensioner.next_due)
            return pensioner.next_due

    async def register(self, id_number: str, name: str, *, phone: str | None = None,
                       region: str | None = None) -> Pensioner:
        """Create the pensioner if new (used by enrolment and demo data)."""
        async with self.db.session() as session:
            pensioner = await session.scalar(select(Pensioner).where(Pensioner.id_number == id_number))
            if pensioner is None:
                pensioner = Pensioner(id_number=id_number, name=name, phone=phone, region=region)
                session.add(pensioner)
                await session.flush()
            return pensioner


# Fictional demo pensioners (valid checksums, Qinghai area codes 63xxxx).
DEMO_PENSIONERS = [
    (with_check_digit("63010219500315002"), "张桂兰", "西宁", 200),
    (with_check_digit("63210219480802001"), "马福海", "海东", 400),
    (with_check_digit("63280219551120003"), "李德明", "海西", None),
]


async def seed_demo(registry: PensionerRegistry) -> list[Pensioner]:
    """Insert the demo pensioners; ``days`` ago they certified (None: never)."""
    created = []
    for id_number, name, region, days_ago in DEMO_PENSIONERS:
        pensioner = await registry.register(id_number, name, region=region)
        if days_ago is not None and pensioner.certified_at is None:
            await registry.mark_certified(pensioner.id, "demo",
                                          datetime.now(UTC) - timedelta(days=days_ago))
        created.append(pensioner)
    return created
