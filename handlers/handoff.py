"""Escalation to a person: cases in the database, the live queue in Redis.

The queue is a sorted set ``handoff:queue`` (case id by creation time) shared by every
server process; staff consoles follow ``handoff:events`` (a Redis stream).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from sqlalchemy import select

from bot.config import Settings
from bot.conversation import Conversation
from bot.storage.db import Database
from bot.storage.models import Case, CaseMessage
from bot.storage.redis import redis_guard

log = logging.getLogger(__name__)
QUEUE_KEY = "handoff:queue"
EVENTS_KEY = "handoff:events"
REASON_LABELS = {
    "user_request": "用户要求转人工",
    "face_failed": "刷脸多次失败",
    "appeal": "申诉/人工审核",
    "info_mismatch": "信息不一致需更正",
    "fallback": "多次没听懂",
    "staff_pull": "工作人员接入",
    "family": "代人认证需审核",
    "photo_reused": "照片重复使用需复核",
}
_DAYS = {"Mon": 0, "Tue": 1, "Wed": 2, "Thu": 3, "Fri": 4, "Sat": 5, "Sun": 6}


def parse_office_hours(spec: str) -> tuple[set[int], tuple[int, int], tuple[int, int]]:
    """"Mon-Fri 09:00-17:30" -> (weekdays, (9, 0), (17, 30))."""
    days_part, hours_part = spec.split()
    first, _, last = days_part.partition("-")
    start_day, end_day = _DAYS[first], _DAYS[last or first]
    days = set(range(start_day, end_day + 1))
    opens, _, closes = hours_part.partition("-")
    oh, om = (int(x) for x in opens.split(":"))
    ch, cm = (int(x) for x in closes.split(":"))
    return days, (oh, om), (ch, cm)


class HandoffService:
    """Creates cases, tracks the queue and relays messages."""

    def __init__(self, settings: Settings, db: Database, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.office_days, self.opens, self.closes = parse_office_hours(settings.staff.office_hours)
        self.tz = ZoneInfo(settings.staff.timezone)

    def in_office_hours(self, now: datetime | None = None) -> bool:
        local = (now or datetime.now(timezone.utc)).astimezone(self.tz)
        minutes = local.hour * 60 + local.minute
        return (local.weekday() in self.office_days
                and self.opens[0] * 60 + self.opens[1] <= minutes < self.closes[0] * 60 + self.closes[1])

    def office_hours_text(self) -> str:
        return f"人工服务时间：{self.settings.staff.office_hours.replace('Mon-Fri', '周一至周五')}"

    async def escalate(self, conversation: Conversation, reason: str, *,
                       pensioner_id: int | None = None, evidence: dict[str, Any] | None = None,
                       proxy: dict[str, Any] | None = None) -> int:
        """Open a case (or reuse the open one) and put the chat in the waiting queue."""
        if conversation.case_id and conversation.mode in ("waiting", "human"):
            return conversation.case_id
        async with self.db.session() as session:
            case = Case(
                conversation_key=conversation.key, channel=conversation.channel,
                user_id=conversation.user_id, reason=reason, status="waiting",
                pensioner_id=pensioner_id or conversation.memory.get("pensioner_id"),
                transcript=list(conversation.transcript), evidence=evidence or {},
                proxy=proxy or {},
            )
            session.add(case)
            await session.flush()
            case_id = case.id
        conversation.mode = "waiting"
        conversation.case_id = case_id
        await self._enqueue(case_id, reason)
        return case_id

    @redis_guard
    async def _enqueue(self, case_id: int, reason: str) -> None:
        now = datetime.now(timezone.utc).timestamp()
        await self.redis.zadd(QUEUE_KEY, {str(case_id): now})
        await self.publish("case_waiting", case_id=case_id, reason=reason)

    @redis_guard
    async def publish(self, kind: str, **data: Any) -> None:
        await self.redis.xadd(EVENTS_KEY, {"kind": kind, "data": json.dumps(data, ensure_ascii=False)},
                              maxlen=10000, approximate=True)

    @redis_guard
    async def position(self, case_id: int) -> int | None:
        rank = await self.redis.zrank(QUEUE_KEY, str(case_id))
        return None if rank is None else int(rank) + 1

    @redis_guard
    async def dequeue(self, case_id: int) -> None:
        await self.redis.zrem(QUEUE_KEY, str(case_id))

    async def cancel(self, conversation: Conversation) -> None:
        """The user gave up waiting: close the case, back to the bot."""
        case_id = conversation.case_id
        if case_id is not None:
            async with self.db.session() as session:
                case = await session.get(Case, case_id)
                if case is not None and case.status in ("waiting", "claimed"):
                    case.status = "cancelled"
                    case.closed_at = datetime.now(timezone.utc)
            await self.dequeue(case_id)
            await self.publish("case_cancelled", case_id=case_id)
        conversation.mode = "bot"
        conversation.case_id = None

    async def record_user_message(self, conversation: Conversation, text: str) -> None:
        """Store a message the user sent while a person is involved and notify staff."""
        if conversation.case_id is None:
            return
        async with self.db.session() as session:
            session.add(CaseMessage(case_id=conversation.case_id, author="user", text=text))
        await self.publish("user_message", case_id=conversation.case_id)

    async def waiting_cases(self) -> list[Case]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(Case).where(Case.status == "waiting").order_by(Case.created_at))
            return list(rows)

    def expected_wait_minutes(self, position: int) -> int:
        return max(1, position * 3)
