"""The agency dashboard's figures (issue 22): one SQL query per figure, aggregates only.

Every figure reads durable records for a range of local dates (``staff.timezone``):
the daily totals of the certification events, ``certification_daily`` (funnel, failure
causes, prefecture, channel, day, satisfaction; a person counts once per step and calendar
year, on the day they first reached it, see :mod:`bot.records.events`), ``cases`` (handoff:
``first_reply_at`` is the first staff message), ``reminder_deliveries`` with the pensioner's
``certified_at`` (reminders). The queries run on PostgreSQL and SQLite.

Privacy: only counts and averages leave this module, and any cell that counts fewer than
:data:`MIN_CELL` people (0 included) is the string ``"<5"`` instead of the number; an
average over fewer than :data:`MIN_CELL` people is ``"<5"`` too. No ID number, name or
chat identity is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from bot.core.storage.db import Database
from bot.core.storage.models import (
    Case,
    CertificationDaily,
    Pensioner,
    ReminderDelivery,
    ReminderSubscription,
    StaffUser,
)
from bot.records.events import OTHER_PREFECTURE, PREFECTURE_LABELS, PREFECTURES, FailureCause, Step

MIN_CELL = 5
SUPPRESSED = "<5"
MAX_RANGE_DAYS = 731

FUNNEL_STEPS = (Step.STARTED, Step.ID_GIVEN, Step.SELFIE_SENT, Step.PASSED, Step.FAILED,
                Step.REVIEW, Step.APPROVED)
STEP_VALUES = [s.value for s in FUNNEL_STEPS]
STEP_LABELS = {Step.STARTED: "开始认证", Step.ID_GIVEN: "提供身份证号", Step.SELFIE_SENT: "发送自拍",
               Step.PASSED: "核验通过", Step.FAILED: "核验未通过", Step.REVIEW: "转人工审核",
               Step.APPROVED: "认证完成"}
CAUSE_LABELS = {FailureCause.QUALITY: "照片质量问题", FailureCause.MISMATCH: "人脸比对不一致",
                FailureCause.NO_MODEL: "未建模", FailureCause.REUSE: "照片重复使用",
                FailureCause.CHALLENGE: "动作检测未通过"}
CHANNEL_LABELS = {"wechat": "微信", "telegram": "Telegram", "web": "网页", "cli": "终端"}
SATISFACTION_LABELS = {3: "帮到了", 2: "帮到一部分", 1: "没帮到"}
WAIT_BUCKETS = ((300, "5分钟内"), (1800, "5–30分钟"), (7200, "30分钟–2小时"), (None, "2小时以上"))
REMINDER_WINDOW_S = 30 * 86400
TABLE_KEYS = ("funnel", "failure_causes", "by_prefecture", "by_channel", "by_day", "handoff",
              "reminders", "satisfaction")

Cell = int | float | str | None


def cell(people: int) -> int | str:
    """A count of people as shown: the number, or ``"<5"`` below :data:`MIN_CELL`."""
    return people if people >= MIN_CELL else SUPPRESSED


def avg_cell(value: float | None, people: int, digits: int = 1) -> float | str | None:
    """An average over ``people``: rounded, ``"<5"`` when too few, None when there is none."""
    if people < MIN_CELL:
        return SUPPRESSED
    return None if value is None else round(float(value), digits)


@dataclass(frozen=True)
class DateRange:
    """Local dates, both included."""

    start: date
    end: date

    def utc_bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[start 00:00, end+1 00:00) local, as UTC."""
        low = datetime.combine(self.start, time(), tzinfo=tz).astimezone(UTC)
        high = datetime.combine(self.end + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
        return low, high

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def seconds_between(dialect: str, later: Any, earlier: Any) -> ColumnElement[Any]:
    """``later - earlier`` in seconds, on PostgreSQL and SQLite."""
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


class DashboardStats:
    """Computes the dashboard's figures for a date range."""

    def __init__(self, db: Database, timezone: str) -> None:
        self.db = db
        self.tz = ZoneInfo(timezone)

    @property
    def dialect(self) -> str:
        return self.db.engine.dialect.name

    async def compute(self, period: DateRange) -> dict[str, Any]:
        """Every figure, keyed as the API answers (``TABLE_KEYS``).

        The figures are independent queries: they run concurrently, each on its own
        connection, so the page waits for the slowest one rather than for their sum."""
        async def one(name: str) -> Any:
            async with self.db.session() as session:
                return await getattr(self, name)(session, period)

        results = await asyncio.gather(*(one(name) for name in TABLE_KEYS))
        return {"from": period.start.isoformat(), "to": period.end.isoformat(), "min_cell": MIN_CELL,
                **dict(zip(TABLE_KEYS, results, strict=True))}

    # ------------------------------------------------------------ events (daily totals)

    @staticmethod
    def _in(period: DateRange) -> ColumnElement[bool]:
        return CertificationDaily.day.between(period.start, period.end)

    async def funnel(self, session: AsyncSession, period: DateRange) -> list[dict[str, Any]]:
        """People at each step: started → ID given → selfie sent → passed / failed / review → approved."""
        d = CertificationDaily
        rows = await session.execute(
            select(d.kind, func.sum(d.people))
            .where(self._in(period), d.kind.in_(STEP_VALUES), d.cause == "")
            .group_by(d.kind))
        people = {kind: int(n or 0) for kind, n in rows}
        return [{"step": s.value, "label": STEP_LABELS[s], "people": cell(people.get(s.value, 0))}
                for s in FUNNEL_STEPS]

    async def failure_causes(self, session: AsyncSession, period: DateRange) -> list[dict[str, Any]]:
        """Failed verdicts by cause: people and attempts."""
        d = CertificationDaily
        rows = await session.execute(
            select(d.cause, func.sum(d.people), func.sum(d.events))
            .where(self._in(period), d.kind == Step.FAILED.value, d.cause != "").group_by(d.cause))
        found = {cause: (int(p or 0), int(n or 0)) for cause, p, n in rows}
        out = []
        for cause in FailureCause:
            people, attempts = found.get(cause.value, (0, 0))
            out.append({"cause": cause.value, "label": CAUSE_LABELS[cause], "people": cell(people),
                        "attempts": attempts if people >= MIN_CELL else SUPPRESSED})
        return out

    async def by_prefecture(self, session: AsyncSession, period: DateRange) -> list[dict[str, Any]]:
        """Per prefecture (from the ID number): people at each step after the ID number, and
        failed people by cause."""
        d = CertificationDaily
        rows = await session.execute(
            select(d.prefecture, d.kind, d.cause, func.sum(d.people))
            .where(self._in(period), d.prefecture != "", d.kind.in_(STEP_VALUES[1:]))
            .group_by(d.prefecture, d.kind, d.cause))
        steps: dict[tuple[str, str], int] = {}
        causes: dict[tuple[str, str], int] = {}
        for prefecture, kind, cause, people in rows:
            if cause:
                causes[(str(prefecture), str(cause))] = int(people or 0)
            else:
                steps[(str(prefecture), str(kind))] = int(people or 0)
        out = []
        for code in [*PREFECTURES, OTHER_PREFECTURE]:
            row: dict[str, Any] = {"prefecture": code, "label": PREFECTURE_LABELS[code]}
            for step in FUNNEL_STEPS[1:]:
                row[step.value] = cell(steps.get((code, step.value), 0))
            for cause in FailureCause:
                row[f"failed_{cause.value}"] = cell(causes.get((code, cause.value), 0))
            out.append(row)
        return out

    async def _steps_per(self, session: AsyncSession, period: DateRange, column: Any,
                         key: Callable[[Any], str] = str) -> dict[str, dict[str, int]]:
        """People at each funnel step per value of ``column`` (as ``key`` spells it)."""
        d = CertificationDaily
        rows = await session.execute(
            select(column, d.kind, func.sum(d.people))
            .where(self._in(period), d.kind.in_(STEP_VALUES), d.cause == "")
            .group_by(column, d.kind))
        found: dict[str, dict[str, int]] = {}
        for value, kind, people in rows:
            found.setdefault(key(value), {})[kind] = int(people or 0)
        return found

    @staticmethod
    def _step_cells(people: dict[str, int]) -> dict[str, int | str]:
        return {s.value: cell(people.get(s.value, 0)) for s in FUNNEL_STEPS}

    async def by_channel(self, session: AsyncSession, period: DateRange) -> list[dict[str, Any]]:
        """Per channel: people at each step."""
        found = await self._steps_per(session, period, CertificationDaily.channel)
        channels = [c for c in CHANNEL_LABELS if c in found] + sorted(set(found) - set(CHANNEL_LABELS))
        return [{"channel": c, "label": CHANNEL_LABELS.get(c, c), **self._step_cells(found[c])}
                for c in channels]

    async def by_day(self, session: AsyncSession, period: DateRange) -> list[dict[str, Any]]:
        """Per local day: people at each step (every day of the range, none left out)."""
        found = await self._steps_per(
            session, period, CertificationDaily.day,
            key=lambda day: day.isoformat() if isinstance(day, date) else str(day)[:10])
        return [{"day": d.isoformat(), **self._step_cells(found.get(d.isoformat(), {}))} for d in period.days()]

    async def satisfaction(self, session: AsyncSession, period: DateRange) -> dict[str, Any]:
        """Answers to "这次帮到您了吗？" (3 = helped, 1 = not): count, average, distribution."""
        d = CertificationDaily
        rows = await session.execute(
            select(d.cause, func.sum(d.events))
            .where(self._in(period), d.kind == Step.SATISFACTION.value).group_by(d.cause))
        counts = {int(score): int(n or 0) for score, n in rows if str(score).isdigit()}
        total = sum(counts.values())
        average = sum(v * n for v, n in counts.items()) / total if total else None
        return {"answers": cell(total), "average": avg_cell(average, total, 2), "scale": "1-3",
                "rows": [{"score": score, "label": label, "people": cell(counts.get(score, 0))}
                         for score, label in SATISFACTION_LABELS.items()]}

    # ------------------------------------------------------------ handoff

    async def handoff(self, session: AsyncSession, period: DateRange) -> dict[str, Any]:
        """Cases opened, wait to the first staff message, time to resolve, per agent."""
        low, high = period.utc_bounds(self.tz)
        wait = seconds_between(self.dialect, Case.first_reply_at, Case.created_at)
        answered = Case.first_reply_at.is_not(None)
        resolved = and_(Case.status == "closed", Case.closed_at.is_not(None))
        resolve = seconds_between(self.dialect, Case.closed_at, Case.created_at)
        columns = [
            Case.assigned_to,
            func.count(Case.id), func.count(Case.first_reply_at),
            func.avg(case((answered, cast(wait, Float)))),
            func.sum(case((resolved, 1), else_=0)),
            func.avg(case((resolved, cast(resolve, Float)))),
        ]
        lower = 0.0
        for limit, _ in WAIT_BUCKETS:
            inside = case((and_(answered, wait >= lower, *([wait < limit] if limit else [])), 1),
                          else_=0)
            columns.append(func.sum(inside))
            lower = float(limit or 0)
        rows = list(await session.execute(
            select(*columns).where(Case.created_at >= low, Case.created_at < high)
            .group_by(Case.assigned_to)))
        names = dict((await session.execute(select(StaffUser.id, StaffUser.username))).all())
        totals = [0, 0, 0.0, 0, 0.0] + [0] * len(WAIT_BUCKETS)
        agents = []
        for staff_id, opened, replied, avg_wait, closed, avg_resolve, *buckets in rows:
            opened, replied, closed = int(opened), int(replied), int(closed or 0)
            totals[0] += opened
            totals[1] += replied
            totals[2] += float(avg_wait or 0) * replied
            totals[3] += closed
            totals[4] += float(avg_resolve or 0) * closed
            for i, n in enumerate(buckets):
                totals[5 + i] += int(n or 0)
            if staff_id is None:
                continue  # never claimed: counted in the totals only
            agents.append({"agent": names.get(staff_id, f"#{staff_id}"), "cases": cell(opened),
                           "answered": cell(replied),
                           "avg_first_reply_s": avg_cell(avg_wait, replied, 0),
                           "resolved": cell(closed),
                           "avg_resolve_s": avg_cell(avg_resolve, closed, 0)})
        agents.sort(key=lambda a: str(a["agent"]))
        opened, replied, wait_sum, closed, resolve_sum = totals[:5]
        return {
            "opened": cell(int(opened)), "answered": cell(int(replied)),
            "avg_first_reply_s": avg_cell(wait_sum / replied if replied else None, int(replied), 0),
            "resolved": cell(int(closed)),
            "avg_resolve_s": avg_cell(resolve_sum / closed if closed else None, int(closed), 0),
            "first_reply_buckets": [{"bucket": label, "cases": cell(int(n))}
                                    for (_, label), n in zip(WAIT_BUCKETS, totals[5:], strict=True)],
            "per_agent": agents,
        }

    # ------------------------------------------------------------ reminders

    async def reminders(self, session: AsyncSession, period: DateRange) -> dict[str, Any]:
        """Reminders sent (a send was tried), delivered (the platform accepted), and whose
        pensioner certified within 30 days after delivery."""
        low, high = period.utc_bounds(self.tz)
        d, s, p = ReminderDelivery, ReminderSubscription, Pensioner
        after = seconds_between(self.dialect, p.certified_at, d.sent_at)
        delivered = d.status == "sent"
        certified = and_(delivered, d.sent_at.is_not(None), p.certified_at.is_not(None),
                         after >= 0, after <= REMINDER_WINDOW_S)
        row = (await session.execute(
            select(func.count(d.id), func.sum(case((delivered, 1), else_=0)),
                   func.sum(case((certified, 1), else_=0)))
            .select_from(d).join(s, s.id == d.subscription_id).join(p, p.id == s.pensioner_id)
            .where(d.created_at >= low, d.created_at < high, d.attempts > 0,
                   d.status != "cancelled"))).one()
        sent, got, certified_n = (int(v or 0) for v in row)
        return {"sent": cell(sent), "delivered": cell(got), "certified_within_30_days": cell(certified_n),
                "certified_rate": round(certified_n / got, 3) if got >= MIN_CELL and certified_n >= MIN_CELL
                else (SUPPRESSED if got else None)}


# ------------------------------------------------------------ tables (CSV)


def table(stats: dict[str, Any], key: str) -> tuple[list[str], list[dict[str, Any]]]:
    """One figure as (columns, rows) for a CSV download."""
    figure = stats[key]
    if key == "handoff":
        total = {"agent": "全部", "cases": figure["opened"], "answered": figure["answered"],
                 "avg_first_reply_s": figure["avg_first_reply_s"], "resolved": figure["resolved"],
                 "avg_resolve_s": figure["avg_resolve_s"]}
        rows = [total, *figure["per_agent"]]
    elif key == "reminders":
        rows = [figure]
    elif key == "satisfaction":
        rows = [*figure["rows"], {"score": "average", "label": "平均分", "people": figure["average"]}]
    else:
        rows = list(figure)
    columns = list(rows[0]) if rows else []
    return columns, rows


__all__ = ["MAX_RANGE_DAYS", "MIN_CELL", "SUPPRESSED", "TABLE_KEYS", "DashboardStats", "DateRange",
           "cell", "table"]
