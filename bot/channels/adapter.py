"""What every channel adapter shares: mounting it on the app (its lifecycle and the routes
that call it), recording a message it finally could not deliver, and what a chat is told
when a photo it sent could not be fetched."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from bot.core.i18n import tr
from bot.core.logs import mask
from bot.core.outbox import SEND_FAILED
from bot.services import Services

log = logging.getLogger(__name__)

PHOTO_FAILED = tr("照片没能完整收到（可能是网络不好），这次不算次数。请您稍后再发一次。")

Adapter = TypeVar("Adapter")
AdapterHandler = Callable[[Adapter, web.Request], Awaitable[web.Response]]


def mount(app: web.Application, lifecycle: Callable[[web.Application], AsyncIterator[None]],
          key: web.AppKey[Adapter], routes: Sequence[tuple[str, str, AdapterHandler[Adapter]]]) -> None:
    """``lifecycle`` (a cleanup context) puts the adapter under ``key``; each route
    ``(method, path, Adapter.method)`` calls that method of the running adapter."""
    app.cleanup_ctx.append(lifecycle)
    for method, path, handler in routes:
        if method == "GET":  # and HEAD, as add_get does
            app.router.add_get(path, _calling(key, handler))
        else:
            app.router.add_route(method, path, _calling(key, handler))


def _calling(key: web.AppKey[Adapter], handler: AdapterHandler[Adapter]) -> Callable[[web.Request],
                                                                                    Awaitable[web.Response]]:
    async def route(request: web.Request) -> web.Response:
        return await handler(request.app[key], request)

    route.__name__ = getattr(handler, "__name__", "route")
    return route


async def record_send_failure(services: Services, channel: str, target: str, text: str, **details: Any) -> None:
    """A message ``channel`` gave up on: the audit action ``send_failed`` (the staff console
    lists it) and a refresh of the staff pages. Failing to record it is logged, not raised:
    the caller has logged the failure itself."""
    try:
        await services.audit(f"channel:{channel}", SEND_FAILED, target=target, **details,
                             text=mask(text)[:500])
        await services.handoff.publish(SEND_FAILED, channel=channel)  # staff pages refresh
    except Exception as exc:  # noqa: BLE001 - the caller's log line already says it
        log.error("could not record the failed send: %s", exc.__class__.__name__)
