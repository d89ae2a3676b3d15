"""The reminder pass inside a server process (kept for ``serve --no-worker`` set-ups).

Reminders for pensioners and family members now live in ``bot/reminders.py``; the face
worker's arq cron runs the same pass. Running it in several processes is safe: each
delivery is claimed under a unique constraint in the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import date, datetime, time

from aiohttp import web

from bot import keys
from bot.core.storage.redis import REDIS_ERRORS
from bot.core.tasks import running
from bot.records.reminders import local_time, run_pass, tz
from bot.reminder_delivery import make_deliverer
from bot.services import Services

log = logging.getLogger(__name__)


async def send_due_reminders(services: Services, today: date | None = None) -> int:
    """One pass (as of 10:00 on ``today`` when given); returns how many were sent."""
    now = datetime.combine(today, time(10, 0), tzinfo=tz(services.settings)) if today else None
    deliverer = make_deliverer(services.settings, services.redis, services.outbox)
    try:
        result = await run_pass(services.settings, services.db, services.redis, now=now,
                                deliverer=deliverer, audit=services.audit, metrics=services.metrics)
    finally:
        await deliverer.close()
    return result.sent


async def _loop(services: Services) -> None:
    every_s = 60 * services.settings.reminders.check_every_minutes
    while True:
        try:
            sent = await send_due_reminders(services)
            if sent:
                log.info("reminders sent", extra={"count": sent, "at": local_time(services.settings).isoformat()})
        except asyncio.CancelledError:
            raise
        except REDIS_ERRORS as exc:
            log.error("reminders: redis unavailable (%s)", exc.__class__.__name__)
        except Exception:  # noqa: BLE001 - logged loudly; the next round tries again
            log.exception("reminders failed")
        await asyncio.sleep(every_s)


async def reminders_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the reminder task of this server process."""
    async with running(_loop(app[keys.SERVICES]), "reminders"):
        yield


def setup(app: web.Application) -> None:
    """The reminder feature of a server process."""
    app.cleanup_ctx.append(reminders_ctx)
