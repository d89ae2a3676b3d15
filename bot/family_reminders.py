"""Reminders for family members who opted in (ProxyLink.reminder_opt_in) after certifying.

A background task of each server process checks hourly for pensioners whose next due date
is within ``family.reminder_days_before`` days and pushes one reminder per link and due
date through the outbox (any channel). ``SET NX`` in Redis makes it once across processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

from aiohttp import web
from sqlalchemy import select

from bot import keys
from bot.core.messages import Reply
from bot.core.storage.models import Pensioner, ProxyLink
from bot.core.storage.redis import REDIS_ERRORS
from bot.services import Services
from dialogs.common import MENU_OPTIONS, format_date
from dialogs.family import mask_name

log = logging.getLogger(__name__)
CHECK_EVERY_S = 3600
SENT_TTL_S = 400 * 86400
REMINDER = ("温馨提醒：您帮 {name} 办的养老待遇资格认证，下次要在 {due} 前后再认证。\n"
            "到时候请和老人在一起，回复“帮家人认证”就能在这里办。")


async def send_due_reminders(services: Services, today: date | None = None) -> int:
    """Push the reminders that are due now; returns how many were sent."""
    today = today or datetime.now(UTC).date()
    horizon = today + timedelta(days=services.settings.family.reminder_days_before)
    async with services.db.session() as session:
        rows = (await session.execute(
            select(ProxyLink.id, ProxyLink.proxy_key, ProxyLink.pensioner_id, Pensioner.name,
                   Pensioner.next_due)
            .join(Pensioner, Pensioner.id == ProxyLink.pensioner_id)
            .where(ProxyLink.reminder_opt_in.is_(True), ProxyLink.removed_at.is_(None),
                   Pensioner.next_due.is_not(None), Pensioner.next_due >= today,
                   Pensioner.next_due <= horizon)
            .order_by(ProxyLink.id.desc()))).all()
    sent = 0
    done: set[tuple[str, int]] = set()
    for link_id, proxy_key, pensioner_id, name, next_due in rows:
        if next_due is None or (proxy_key, pensioner_id) in done:  # newest link of a pair only
            continue
        done.add((proxy_key, pensioner_id))
        marker = f"family:reminded:{proxy_key}:{pensioner_id}:{next_due.isoformat()}"
        if not await services.redis.set(marker, str(link_id), nx=True, ex=SENT_TTL_S):
            continue
        try:
            await services.outbox.push(proxy_key, [Reply(
                REMINDER.format(name=mask_name(name), due=format_date(next_due)), MENU_OPTIONS)])
        except Exception:
            await services.redis.delete(marker)  # try again next round
            raise
        await services.audit("family:reminder", "family_reminder_sent",
                             target=f"pensioner:{pensioner_id}", proxy_key=proxy_key,
                             link_id=link_id, next_due=next_due.isoformat())
        sent += 1
    return sent


async def _loop(services: Services) -> None:
    while True:
        try:
            sent = await send_due_reminders(services)
            if sent:
                log.info("family reminders sent", extra={"count": sent})
        except asyncio.CancelledError:
            raise
        except REDIS_ERRORS as exc:
            log.error("family reminders: redis unavailable (%s)", exc.__class__.__name__)
        except Exception:  # noqa: BLE001 - logged loudly; the next round tries again
            log.exception("family reminders failed")
        await asyncio.sleep(CHECK_EVERY_S)


async def reminders_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the reminder task of this server process."""
    task = asyncio.create_task(_loop(app[keys.SERVICES]), name="family-reminders")
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def setup(app: web.Application) -> None:
    """The family reminder feature."""
    app.cleanup_ctx.append(reminders_ctx)
