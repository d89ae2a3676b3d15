"""Certification steps as durable events, for the agency's dashboard (issue 22).

Dialogs, the verdict path and the staff desk call :class:`CertificationEvents` with typed
values (:class:`Step`, :class:`FailureCause`); each call writes one ``certification_events``
row and counts the same step in Prometheus (labels prefecture and channel).

Each event also adds to the day's totals (``certification_daily``), which the dashboard
reads: ``people`` there counts a person on the day they first reached a step in the
calendar year (``certification_firsts`` remembers who did), so a sum over any range of days
counts people, not attempts, and a year of figures stays a few thousand rows.

Privacy: an event never holds an ID number, a name or the chat identity. ``subject`` is a
truncated SHA-256 of the chat's conversation key (so figures can count people, not
messages), ``prefecture`` only the ID number's 4-digit region code.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.core.errors import DatabaseUnavailable
from bot.core.metrics import Metrics
from bot.core.storage.db import Database
from bot.core.storage.models import (
    CertificationDaily,
    CertificationEvent,
    CertificationFirst,
    Pensioner,
)

log = logging.getLogger(__name__)
# One step on PostgreSQL, in one statement: the event row, then for the step (and for the
# step with its cause) the person's first time this year and the day's totals, where
# ``people`` grows only when the person reached it for the first time.
_RECORD_STEP = text("""
WITH new_event AS (
    INSERT INTO certification_events (at, day, kind, cause, channel, prefecture, subject, proxy, case_id, value)
    VALUES (:at, :day, :kind, :cause, :channel, :prefecture, :subject, :proxy, :case_id, :value)
), firsts AS (
    INSERT INTO certification_firsts (subject, kind, cause, year)
    SELECT CAST(:subject AS varchar), CAST(:kind AS varchar), part, CAST(:year AS integer)
    FROM unnest(CAST(:parts AS varchar[])) AS part
    ON CONFLICT DO NOTHING
    RETURNING cause
)
INSERT INTO certification_daily AS daily (day, kind, cause, channel, prefecture, people, events)
SELECT CAST(:day AS date), CAST(:kind AS varchar), part, CAST(:channel AS varchar),
       CAST(:daily_prefecture AS varchar), (SELECT count(*) FROM firsts WHERE firsts.cause = part), 1
FROM unnest(CAST(:parts AS varchar[])) AS part
ON CONFLICT (day, kind, cause, channel, prefecture)
DO UPDATE SET people = daily.people + excluded.people, events = daily.events + 1
""")

# Qinghai's prefecture-level divisions by the first four digits of the ID number.
PREFECTURES: dict[str, str] = {
    "6301": "西宁", "6302": "海东", "6322": "海北", "6323": "黄南", "6325": "海南",
    "6326": "果洛", "6327": "玉树", "6328": "海西",
}
OTHER_PREFECTURE = "other"
PREFECTURE_LABELS = {**PREFECTURES, OTHER_PREFECTURE: "其他"}


class Step(StrEnum):
    """A step of the funnel (and the satisfaction answer after a staff case)."""

    STARTED = "started"          # certification begun in the chat (self or for a family member)
    ID_GIVEN = "id_given"        # a valid ID number given
    SELFIE_SENT = "selfie_sent"  # a photo sent at the selfie (or pose) step
    PASSED = "passed"            # the face verification passed
    FAILED = "failed"            # a verdict that did not pass (see FailureCause)
    REVIEW = "review"            # sent to a person for manual review (人工审核)
    APPROVED = "approved"        # certified: a passed selfie or a staff approval
    SATISFACTION = "satisfaction"  # "这次帮到您了吗？" answered after a staff case


class FailureCause(StrEnum):
    QUALITY = "quality"      # the photo was unusable (dark, blurred, no face, ...)
    MISMATCH = "mismatch"    # not the enrolled face
    NO_MODEL = "no_model"    # the pensioner has no enrolled face model
    REUSE = "reuse"          # a photo used before
    CHALLENGE = "challenge"  # the pose (liveness) challenge failed


def prefecture_of(id_number: str | None) -> str | None:
    """The ID number's prefecture code (``6301``...), ``other`` outside the eight, None if unknown."""
    if not id_number or len(id_number) < 4 or not id_number[:4].isdigit():
        return None
    code = id_number[:4]
    return code if code in PREFECTURES else OTHER_PREFECTURE


def subject_of(conversation_key: str) -> str:
    """A pseudonym of the chat, to count people without storing who they are."""
    return hashlib.sha256(conversation_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Chat:
    """Who the event is about, as far as the dashboard needs: channel and a pseudonym."""

    conversation_key: str
    channel: str
    proxy: bool = False


class CertificationEvents:
    """Writes the dashboard's events and counts them in Prometheus."""

    def __init__(self, db: Database, metrics: Metrics, timezone: str) -> None:
        self.db = db
        self.metrics = metrics
        self.tz = ZoneInfo(timezone)

    async def prefecture_for(self, *, id_number: str | None = None,
                             pensioner_id: int | None = None) -> str | None:
        """From the ID number when at hand, else from the registered pensioner's."""
        if id_number:
            return prefecture_of(id_number)
        if pensioner_id is None:
            return None
        async with self.db.session() as session:
            number = await session.scalar(select(Pensioner.id_number)
                                          .where(Pensioner.id == pensioner_id))
        return prefecture_of(number)

    async def record(self, step: Step, chat: Chat, *, cause: FailureCause | None = None,
                     id_number: str | None = None, pensioner_id: int | None = None,
                     case_id: int | None = None, value: float | None = None,
                     at: datetime | None = None) -> None:
        """Store one step. A database outage loses the event (counted and logged), never
        the user's turn: the dashboard is not worth failing a certification for."""
        at = at or datetime.now(UTC)
        day = at.astimezone(self.tz).date()
        subject = subject_of(chat.conversation_key)
        channel = chat.channel[:16]
        row = {"at": at, "day": day, "kind": step.value, "cause": cause.value if cause else None,
               "channel": channel, "subject": subject, "proxy": chat.proxy, "case_id": case_id,
               "value": value}
        try:
            prefecture = await self.prefecture_for(id_number=id_number, pensioner_id=pensioner_id)
            if step is not Step.SATISFACTION and self.db.engine.dialect.name == "postgresql":
                async with self.db.autocommit() as connection:  # one statement, one round trip
                    await connection.execute(_RECORD_STEP, {
                        **row, "prefecture": prefecture, "daily_prefecture": prefecture or "",
                        "year": day.year, "parts": ["", *([cause.value] if cause else [])]})
            else:
                await self._record_in_steps(row, prefecture)
        except DatabaseUnavailable:
            self.metrics.events_lost.inc()
            log.error("dashboard event lost: database unavailable", extra={"step": step.value})
            return
        labels = {"prefecture": prefecture or "unknown", "channel": chat.channel}
        if step is Step.SATISFACTION:
            self.metrics.satisfaction.labels(score=str(int(value or 0)), **labels).inc()
        else:
            self.metrics.certification_steps.labels(step=step.value, **labels).inc()
        if step is Step.FAILED and cause is not None:
            self.metrics.certification_failures.labels(cause=cause.value, **labels).inc()

    async def _record_in_steps(self, row: dict[str, Any], prefecture: str | None) -> None:
        """What ``_RECORD_STEP`` does, as several statements in one transaction (SQLite, and
        the satisfaction answers, whose score is the daily row's cause and always counts)."""
        day, step, cause, value = row["day"], Step(row["kind"]), row["cause"], row["value"]
        channel, subject = row["channel"], row["subject"]
        async with self.db.session() as session:
            await session.execute(insert(CertificationEvent.table()).values(**row, prefecture=prefecture))
            if step is Step.SATISFACTION:  # every answer counts; the score is the "cause"
                await self._add(session, day, step.value, str(int(value or 0)), channel,
                                prefecture, people=1)
            else:
                for part in ("", *([cause] if cause else [])):
                    first = await self._first(session, subject, step.value, part, day.year)
                    await self._add(session, day, step.value, part, channel, prefecture,
                                    people=1 if first else 0)

    def _insert(self, table: Any) -> Any:
        """INSERT with ON CONFLICT, in the engine's dialect (PostgreSQL or SQLite)."""
        if self.db.engine.dialect.name == "postgresql":
            return pg_insert(table)
        return sqlite_insert(table)

    async def _first(self, session: Any, subject: str, kind: str, cause: str, year: int) -> bool:
        """True the first time this person reaches this step (and cause) this year."""
        result = await session.execute(
            self._insert(CertificationFirst)
            .values(subject=subject, kind=kind, cause=cause, year=year).on_conflict_do_nothing())
        return bool(result.rowcount == 1)

    async def _add(self, session: Any, day: date, kind: str, cause: str, channel: str,
                   prefecture: str | None, people: int) -> None:
        """Add one event (and ``people``) to the day's totals."""
        table = CertificationDaily.__table__
        statement = self._insert(CertificationDaily).values(
            day=day, kind=kind, cause=cause, channel=channel, prefecture=prefecture or "",
            people=people, events=1)
        await session.execute(statement.on_conflict_do_update(
            index_elements=["day", "kind", "cause", "channel", "prefecture"],
            set_={"people": table.c.people + statement.excluded.people,
                  "events": table.c.events + 1}))

    def case_opened(self, channel: str, prefecture: str | None) -> None:
        """Count a staff case in Prometheus (the case row itself is the durable record)."""
        self.metrics.handoff_cases.labels(prefecture=prefecture or "unknown", channel=channel).inc()


__all__ = ["PREFECTURES", "PREFECTURE_LABELS", "CertificationEvents", "Chat", "FailureCause", "Step",
           "prefecture_of", "subject_of"]
