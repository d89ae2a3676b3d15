"""Certification reminders (issue 20): subscriptions, the schedule, delivery per channel.

Who: a chat identity (``channel:user``) that said yes after a successful certification,
for itself (``role=self``) or for a pensioner it certified for (``role=family``).
When (``reminders`` in config.yml, local time ``reminders.timezone``):

- ``first``  from ``days_before`` days before the pensioner's ``next_due``;
- ``second`` from ``second_days_before`` days before (only while still not certified:
  a certification moves ``next_due``, so the old due date is never reminded again);
- ``missed`` after the due date (with the missed-deadline help), at most
  ``missed_within_days`` late;
- never in the quiet hours (21:00-08:00).

At most once per (subscription, due date, kind): a delivery row is claimed by inserting
it under a unique constraint, so repeated runs and parallel processes cannot send twice.
A failed delivery is retried by later passes with backoff; after ``max_attempts`` (or at
once when retrying cannot help) it becomes ``send_failed`` and is recorded in the audit
log for staff. One pass is :func:`run_pass`; ``python -m bot reminders send`` runs one,
and the face worker's arq cron (``face/jobs.py``) runs one every few minutes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from bot.core.config import Settings
from bot.core.errors import BotError, ExternalServiceError
from bot.core.facts import format_date
from bot.core.i18n import render, render_all, tr
from bot.core.logs import mask, mask_name
from bot.core.messages import Reply
from bot.core.metrics import Metrics
from bot.core.outbox import SEND_FAILED, WEB_QUEUE_TTL_S, Outbox
from bot.core.storage.db import Database
from bot.core.storage.models import Pensioner, ProxyLink, ReminderDelivery, ReminderSubscription
from bot.records.events import prefecture_of

log = logging.getLogger(__name__)
FIRST, SECOND, MISSED = "first", "second", "missed"
SENDING, SENT, RETRY, FAILED, CANCELLED = "sending", "sent", "retry", "send_failed", "cancelled"
DELIVERY_STATUSES = (SENDING, SENT, RETRY, FAILED, CANCELLED)
STALE_CLAIM = timedelta(minutes=30)   # a "sending" row this old was left by a crashed process
SEND_TIMEOUT_S = 30.0
WEB_KEEP_S = 60 * 86400               # web: kept until the next visit (longer than the outbox's)


class ReminderSendError(ExternalServiceError):
    """A channel did not take a reminder; ``permanent`` when retrying cannot help."""

    code = "reminder_send_failed"

    def __init__(self, detail: str, permanent: bool = False) -> None:
        super().__init__(detail)
        self.permanent = permanent


# ---------------------------------------------------------------- time and schedule


def tz(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.reminders.timezone)


def local_time(settings: Settings, now: datetime | None = None) -> datetime:
    """``now`` (aware, or naive meaning local time) in the reminders' time zone."""
    zone = tz(settings)
    if now is None:
        return datetime.now(zone)
    if now.tzinfo is None:
        return now.replace(tzinfo=zone)
    return now.astimezone(zone)


def is_quiet(settings: Settings, local: datetime) -> bool:
    """True in the hours when no reminder may go out (default 21:00-08:00)."""
    start, end = settings.reminders.quiet_start, settings.reminders.quiet_end
    if start == end:
        return False
    if start > end:  # over midnight
        return local.hour >= start or local.hour < end
    return start <= local.hour < end


def kind_due(settings: Settings, due: date, today: date) -> str | None:
    """Which reminder is due on ``today`` for a certification due on ``due``, if any."""
    config = settings.reminders
    days_left = (due - today).days
    if days_left < 0:
        return MISSED if -days_left <= config.missed_within_days else None
    if days_left <= config.second_days_before:
        return SECOND
    if days_left <= config.days_before:
        return FIRST
    return None


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; they are UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------- subscriptions


async def subscribe(db: Database, conversation_key: str, pensioner_id: int, role: str,
                    language: str = "zh") -> int:
    """Turn reminders on for this chat and pensioner (idempotent); returns the id.

    ``language``: the chat's, kept for the reminders (the conversation will have expired)."""
    channel = conversation_key.split(":", 1)[0]
    now = datetime.now(UTC)
    for _ in range(2):
        try:
            async with db.session() as session:
                sub = await session.scalar(select(ReminderSubscription).where(
                    ReminderSubscription.conversation_key == conversation_key,
                    ReminderSubscription.pensioner_id == pensioner_id))
                if sub is None:
                    sub = ReminderSubscription(conversation_key=conversation_key, channel=channel,
                                               pensioner_id=pensioner_id, role=role, active=True,
                                               language=language, created_at=now, updated_at=now)
                    session.add(sub)
                else:
                    sub.active, sub.role, sub.updated_at, sub.cancelled_at = True, role, now, None
                    sub.language = language
                await session.flush()
                return int(sub.id)
        except IntegrityError:  # the same chat subscribed twice at once: update the winner's row
            continue
    raise BotError("could not record the reminder subscription")


async def unsubscribe_all(db: Database, conversation_key: str) -> int:
    """Turn every reminder of this chat off (opt-out); returns how many were on."""
    now = datetime.now(UTC)
    async with db.session() as session:
        result = await session.execute(
            update(ReminderSubscription)
            .where(ReminderSubscription.conversation_key == conversation_key,
                   ReminderSubscription.active.is_(True))
            .values(active=False, cancelled_at=now, updated_at=now))
        links = await session.execute(
            update(ProxyLink).where(ProxyLink.proxy_key == conversation_key,
                                    ProxyLink.reminder_opt_in.is_(True))
            .values(reminder_opt_in=False))
        # Deliveries waiting for a retry are not sent any more.
        sub_ids = select(ReminderSubscription.id).where(
            ReminderSubscription.conversation_key == conversation_key)
        await session.execute(
            update(ReminderDelivery)
            .where(ReminderDelivery.subscription_id.in_(sub_ids), ReminderDelivery.status == RETRY)
            .values(status=CANCELLED, updated_at=now))
        return int(result.rowcount or 0) + int(links.rowcount or 0)  # type: ignore[attr-defined]


async def is_subscribed(db: Database, conversation_key: str, pensioner_id: int) -> bool:
    async with db.session() as session:
        found = await session.scalar(select(ReminderSubscription.id).where(
            ReminderSubscription.conversation_key == conversation_key,
            ReminderSubscription.pensioner_id == pensioner_id,
            ReminderSubscription.active.is_(True)))
        return found is not None


async def cancel_pending(session: Any, pensioner_id: int, due: date | None) -> int:
    """Within ``session``: reminders waiting for a retry about another due date than ``due``
    (the pensioner certified) are cancelled."""
    sub_ids = select(ReminderSubscription.id).where(ReminderSubscription.pensioner_id == pensioner_id)
    query = (update(ReminderDelivery)
             .where(ReminderDelivery.subscription_id.in_(sub_ids),
                    ReminderDelivery.status.in_((RETRY, SENDING)))
             .values(status=CANCELLED, updated_at=datetime.now(UTC)))
    if due is not None:
        query = query.where(ReminderDelivery.due_date != due)
    result = await session.execute(query)
    return int(result.rowcount or 0)


async def _sync_family_links(db: Database) -> None:
    """Family opt-ins kept on ProxyLink (before subscriptions existed) become subscriptions."""
    async with db.session() as session:
        rows = (await session.execute(
            select(ProxyLink.proxy_key, ProxyLink.pensioner_id)
            .where(ProxyLink.reminder_opt_in.is_(True), ProxyLink.removed_at.is_(None),
                   ~exists().where(ReminderSubscription.conversation_key == ProxyLink.proxy_key,
                                   ReminderSubscription.pensioner_id == ProxyLink.pensioner_id))
        )).all()
    for proxy_key, pensioner_id in {(k, p) for k, p in rows}:
        await subscribe(db, proxy_key, int(pensioner_id), "family")


# ---------------------------------------------------------------- texts


@dataclass
class Reminder:
    """What one reminder says, as chat text and as template fields."""

    kind: str
    role: str
    name: str        # masked
    due: date
    today: date
    language: str = "zh"  # the texts below are catalog texts; senders render them in this language

    def said(self) -> tuple[str, list[str]]:
        """The chat text and options in the reminder's language."""
        return render(self.text(), self.language), render_all(self.options(), self.language)

    def said_fields(self) -> dict[str, str]:
        """The template fields in the reminder's language."""
        return {key: render(value, self.language) for key, value in self.fields().items()}

    @property
    def days_left(self) -> int:
        return (self.due - self.today).days

    def title(self) -> str:
        if self.kind == MISSED:
            return tr("养老待遇资格认证已过期，请尽快补认证")
        return tr("养老待遇资格认证快到期了")

    def note(self) -> str:
        if self.kind == MISSED:
            return (tr("养老金会先暂停发放，补上认证就恢复，停发的钱一般会补发。回到对话回复“{action}”就能办。", action=self.action()))
        return tr("回到对话回复“{action}”就能办。不想再收到提醒，回复“不用提醒了”。", action=self.action())

    def action(self) -> str:
        """What to reply to certify here."""
        return tr("刷脸认证") if self.role == "self" else tr("帮家人认证")

    def options(self) -> list[str]:
        return [self.action(), tr("错过认证时间") if self.kind == MISSED else tr("怎么认证"), tr("不用提醒了"), tr("转人工")]

    def text(self) -> str:
        due = format_date(self.due)
        subject = tr("您的") if self.role == "self" else tr("您帮 {name} 办的", name=self.name)
        stop = tr("不想再收到提醒，回复“不用提醒了”。")
        if self.kind == MISSED:
            return (tr("提醒：{subject}养老待遇资格认证在 {due} 已经到期，现在还没有认证。\n别着急：养老金会先“暂停发放”，不是取消；补上认证就会恢复发放，停发那几个月的钱一般也会补发。\n现在就可以在这里补认证（回复“{action}”），也可以带身份证、社保卡去社保局或邮储银行网点办；想知道怎么补办，回复“错过认证时间”。\n", subject=subject, due=due, action=self.action()) + stop)
        lead = tr("再提醒一次") if self.kind == SECOND else tr("温馨提醒")
        if self.role == "self":
            return (tr("{lead}：您的养老待遇资格认证要在 {due} 前完成，还有 {days_left} 天。\n回复“刷脸认证”就能在这里认证，我会一步一步带您。", lead=lead, due=due, days_left=self.days_left) + stop)
        return (tr("{lead}：{subject}养老待遇资格认证，要在 {due} 前再认证一次，还有 {days_left} 天。\n到时候请和老人在一起，回复“帮家人认证”就能在这里办。", lead=lead, subject=subject, due=due, days_left=self.days_left) + stop)

    def fields(self) -> dict[str, str]:
        return {"title": self.title(), "pensioner": self.name, "due_date": format_date(self.due),
                "note": self.note()}


# ---------------------------------------------------------------- delivery


PUSH_CHANNELS = frozenset({"wechat", "telegram"})  # a reminder must be sent, not queued


class ReminderSender(Protocol):
    """Sends one reminder to a user of one platform (the channel adapters provide these)."""

    async def send(self, user: str, reminder: Reminder) -> None: ...

    async def close(self) -> None: ...


class Deliverer:
    """Sends reminders on each channel without the server's channel objects (CLI, worker).

    WeChat: a template message (or a subscription notice); Telegram: a normal message;
    web and others: the outbox (the web page shows it on the next visit).
    """

    def __init__(self, settings: Settings, redis: aioredis.Redis, outbox: Outbox | None = None,
                 senders: Mapping[str, ReminderSender] | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.outbox = outbox or Outbox(redis)
        self.senders = dict(senders or {})

    async def close(self) -> None:
        for sender in self.senders.values():
            try:
                await sender.close()
            except Exception:  # noqa: BLE001 - closing only
                log.warning("closing a reminder sender failed", exc_info=True)

    async def send(self, conversation_key: str, reminder: Reminder) -> None:
        channel, _, user = conversation_key.partition(":")
        sender = self.senders.get(channel)
        if sender is not None:
            await sender.send(user, reminder)
        elif channel in PUSH_CHANNELS:  # never queue what must be pushed: say it failed
            raise ReminderSendError(f"no reminder sender for {channel}")
        else:
            await self._queued(conversation_key, reminder)

    async def _queued(self, conversation_key: str, reminder: Reminder) -> None:
        try:
            reply = Reply(reminder.text(), reminder.options()).localized(reminder.language)
            delivered = await self.outbox.push(conversation_key, [reply])
            if conversation_key.split(":", 1)[0] in ("web", "cli"):
                await self.redis.expire(f"outbox:{conversation_key}", max(WEB_KEEP_S, WEB_QUEUE_TTL_S))
        except BotError as exc:
            raise ReminderSendError(exc.detail) from exc
        if not delivered:
            raise ReminderSendError(f"outbox: {conversation_key.split(':', 1)[0]} did not deliver")


# ---------------------------------------------------------------- one pass


@dataclass
class PassResult:
    due: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    details: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"due": self.due, "sent": self.sent, "failed": self.failed, "skipped": self.skipped}


Audit = Callable[..., Awaitable[None]]


@dataclass
class _Candidate:
    sub_id: int
    key: str
    role: str
    pensioner_id: int
    name: str
    due: date
    kind: str
    row: ReminderDelivery | None
    prefecture: str | None = None  # the ID number's region code, for the Prometheus labels
    language: str = "zh"  # the chat's when it subscribed


async def _candidates(settings: Settings, db: Database, local: datetime,
                      now_utc: datetime) -> list[_Candidate]:
    today = local.date()
    config = settings.reminders
    low = today - timedelta(days=config.missed_within_days)
    high = today + timedelta(days=config.days_before)
    live_link = exists().where(ProxyLink.proxy_key == ReminderSubscription.conversation_key,
                               ProxyLink.pensioner_id == ReminderSubscription.pensioner_id,
                               ProxyLink.removed_at.is_(None))
    async with db.session() as session:
        rows = (await session.execute(
            select(ReminderSubscription.id, ReminderSubscription.conversation_key,
                   ReminderSubscription.role, Pensioner.id, Pensioner.name, Pensioner.next_due,
                   Pensioner.id_number, ReminderSubscription.language)
            .join(Pensioner, Pensioner.id == ReminderSubscription.pensioner_id)
            .where(ReminderSubscription.active.is_(True), Pensioner.next_due.is_not(None),
                   Pensioner.next_due >= low, Pensioner.next_due <= high,
                   (ReminderSubscription.role != "family") | live_link)
            .order_by(ReminderSubscription.id))).all()
        sub_ids = [row[0] for row in rows]
        existing: dict[tuple[int, date, str], ReminderDelivery] = {}
        if sub_ids:
            for delivery in (await session.scalars(select(ReminderDelivery).where(
                    ReminderDelivery.subscription_id.in_(sub_ids), ReminderDelivery.due_date >= low))):
                existing[(delivery.subscription_id, delivery.due_date, delivery.kind)] = delivery
    found = []
    for sub_id, key, role, pensioner_id, name, next_due, id_number, language in rows:
        if next_due is None:
            continue
        kind = kind_due(settings, next_due, today)
        if kind is None:
            continue
        row = existing.get((sub_id, next_due, kind))
        if row is not None:
            if row.status in (SENT, FAILED, CANCELLED):
                continue
            if row.status == RETRY and (_aware(row.next_attempt_at) or now_utc) > now_utc:
                continue
            if row.status == SENDING and (_aware(row.updated_at) or now_utc) > datetime.now(UTC) - STALE_CLAIM:
                continue  # another process is sending it right now
        found.append(_Candidate(sub_id, key, role, pensioner_id, mask_name(name), next_due, kind, row,
                                prefecture_of(id_number), language or "zh"))
    return found


async def _claim(db: Database, cand: _Candidate) -> ReminderDelivery | None:
    """Take the delivery for this process; None when another one has it."""
    now = datetime.now(UTC)
    try:
        async with db.session() as session:
            if cand.row is None:
                row = ReminderDelivery(subscription_id=cand.sub_id, due_date=cand.due, kind=cand.kind,
                                       status=SENDING, attempts=0, created_at=now, updated_at=now)
                session.add(row)
                await session.flush()
                return row
            result = await session.execute(
                update(ReminderDelivery)
                .where(ReminderDelivery.id == cand.row.id, ReminderDelivery.status == cand.row.status,
                       ReminderDelivery.attempts == cand.row.attempts)
                .values(status=SENDING, updated_at=now))
            return cand.row if result.rowcount == 1 else None  # type: ignore[attr-defined]
    except IntegrityError:
        return None


async def run_pass(settings: Settings, db: Database, redis: aioredis.Redis, *,
                   now: datetime | None = None, dry_run: bool = False,
                   deliverer: Deliverer | None = None, audit: Audit | None = None,
                   metrics: Metrics | None = None) -> PassResult:
    """Send the reminders due at ``now`` (default: the current time); ``metrics`` counts
    them for Prometheus (``bot_reminders_total``)."""
    local = local_time(settings, now)
    now_utc = local.astimezone(UTC)
    audit = audit or db.audit
    result = PassResult()
    if not dry_run:
        await _sync_family_links(db)
    candidates = await _candidates(settings, db, local, now_utc)
    result.due = len(candidates)
    if dry_run or is_quiet(settings, local) or not candidates:
        result.skipped = len(candidates)
        result.details = [{"kind": c.kind, "due_date": c.due.isoformat(), "channel": c.key.split(":")[0]}
                          for c in candidates]
        return result
    own = deliverer is None
    deliverer = deliverer or Deliverer(settings, redis)
    sent_before = result.sent
    try:
        for cand in candidates:
            row = await _claim(db, cand)
            if row is None:
                result.skipped += 1
                continue
            await _deliver(settings, db, deliverer, audit, cand, row, local, now_utc, result)
            if metrics is not None:
                metrics.reminders.labels(outcome="sent" if result.sent > sent_before else "not_sent",
                                         prefecture=cand.prefecture or "unknown",
                                         channel=cand.key.split(":", 1)[0]).inc()
            sent_before = result.sent
    finally:
        if own:
            await deliverer.close()
    return result


async def _deliver(settings: Settings, db: Database, deliverer: Deliverer, audit: Audit,
                   cand: _Candidate, row: ReminderDelivery, local: datetime, now_utc: datetime,
                   result: PassResult) -> None:
    reminder = Reminder(cand.kind, cand.role, cand.name, cand.due, local.date(), cand.language)
    attempts = row.attempts + 1
    error: ReminderSendError | None = None
    try:
        await asyncio.wait_for(deliverer.send(cand.key, reminder), SEND_TIMEOUT_S)
    except ReminderSendError as exc:
        error = exc
    except TimeoutError:
        error = ReminderSendError("timed out")
    except BotError as exc:
        error = ReminderSendError(exc.detail)
    now = datetime.now(UTC)
    target = f"pensioner:{cand.pensioner_id}"
    details = {"conversation_key": cand.key, "kind": cand.kind, "due_date": cand.due.isoformat(),
               "subscription_id": cand.sub_id, "attempts": attempts}
    if error is None:
        await _finish(db, row.id, status=SENT, attempts=attempts, sent_at=now, last_error=None)
        result.sent += 1
        action = "family_reminder_sent" if cand.role == "family" else "reminder_sent"
        await audit("reminders", action, target, proxy_key=cand.key if cand.role == "family" else None,
                    **details)
        return
    result.failed += 1
    give_up = error.permanent or attempts >= settings.reminders.max_attempts
    log.warning("reminder not delivered (attempt %d%s): %s", attempts, ", giving up" if give_up else "",
                error.detail[:200])
    if give_up:
        await _finish(db, row.id, status=FAILED, attempts=attempts, last_error=error.detail[:255])
        await audit(f"channel:{cand.key.split(':', 1)[0]}", SEND_FAILED, cand.key,
                    what="reminder", pensioner=target, error=error.detail[:200], **details)
        return
    delay = settings.reminders.retry_base_s * 3 ** (attempts - 1)
    await _finish(db, row.id, status=RETRY, attempts=attempts, last_error=error.detail[:255],
                  next_attempt_at=now_utc + timedelta(seconds=delay))


async def _finish(db: Database, delivery_id: int, **values: Any) -> None:
    async with db.session() as session:
        await session.execute(update(ReminderDelivery).where(ReminderDelivery.id == delivery_id)
                              .values(updated_at=datetime.now(UTC), **values))


# ---------------------------------------------------------------- staff view


async def staff_summary(db: Database, pensioner_id: int | None = None, limit: int = 100, *,
                        status: str | None = None, offset: int = 0) -> dict[str, Any]:
    """Subscriptions and recent deliveries for the staff console (read-only).

    ``status`` keeps the deliveries in that state (e.g. ``send_failed``); ``offset`` pages
    through them; ``deliveries_total`` counts them all."""
    async with db.session() as session:
        subs_query = select(ReminderSubscription).order_by(ReminderSubscription.id.desc()).limit(limit)
        if pensioner_id is not None:
            subs_query = subs_query.where(ReminderSubscription.pensioner_id == pensioner_id)
        subs = list(await session.scalars(subs_query))
        deliveries_query = (select(ReminderDelivery, ReminderSubscription.pensioner_id)
                            .join(ReminderSubscription,
                                  and_(ReminderSubscription.id == ReminderDelivery.subscription_id))
                            .order_by(ReminderDelivery.id.desc()).limit(limit))
        if pensioner_id is not None:
            deliveries_query = deliveries_query.where(ReminderSubscription.pensioner_id == pensioner_id)
        if status is not None:
            deliveries_query = deliveries_query.where(ReminderDelivery.status == status)
        total = int(await session.scalar(select(func.count()).select_from(
            deliveries_query.limit(None).order_by(None).subquery())) or 0)
        deliveries = (await session.execute(deliveries_query.offset(max(0, offset)))).all()
    return {
        "subscriptions": [{
            "id": s.id, "pensioner_id": s.pensioner_id, "channel": s.channel, "role": s.role,
            "user": mask(s.conversation_key), "active": s.active,
            "created_at": _iso(s.created_at), "cancelled_at": _iso(s.cancelled_at)} for s in subs],
        "deliveries": [{
            "id": d.id, "subscription_id": d.subscription_id, "pensioner_id": pid,
            "due_date": d.due_date.isoformat(), "kind": d.kind, "status": d.status,
            "attempts": d.attempts, "error": d.last_error, "sent_at": _iso(d.sent_at),
            "updated_at": _iso(d.updated_at)} for d, pid in deliveries],
        "deliveries_total": total,
    }


def _iso(moment: datetime | None) -> str | None:
    moment = _aware(moment)
    return moment.isoformat() if moment else None
