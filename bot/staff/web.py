"""The staff console (``/staff``, server-rendered Chinese pages) and its JSON API.

Pages: ``/staff/login``, ``/staff`` (manual reviews, chat requests, my cases, live chats),
``/staff/cases/{id}``, ``/staff/search`` (search, filters, pages; the archive),
``/staff/users``, ``/staff/audit``, ``/staff/canned``, ``/staff/reminders`` and ``/staff/dashboard``
(supervisors). Live updates: a small script polls ``/api/staff/events``,
which reads the Redis stream ``handoff:events``, and re-fetches server-rendered fragments.

API (stable): ``POST /staff/login`` (form ``username``, ``password``) sets the session
cookie; ``GET /api/staff/cases``; ``POST /api/staff/cases/{id}/claim``;
``POST /api/staff/cases/{id}/messages`` ``{"text"}``; ``POST /api/staff/cases/{id}/resolve``
``{"decision", "note"}``. Without a session: 401 JSON; bad input: 4xx JSON.
A staff message the user's channel could not deliver is kept in the case and answered
with 502 ``delivery_failed``. ``GET /api/staff/send-failures`` lists the messages the
channels gave up on (supervisors: all; ``?case_id=`` for one case, for whoever may see it);
the queue page (supervisors) and the case page show them under 发送失败.

CSRF protection:
- The session cookie is ``HttpOnly`` and ``SameSite=Strict`` (``Secure`` when
  ``staff.secure_cookies``), so browsers never send it on cross-site requests.
- Every form of the pages carries the session's CSRF token (field ``csrf``); a form POST
  without the right token is refused with 403.
- JSON API POSTs: a request that sends ``X-CSRF-Token`` must send the right one (the
  pages' script always does). Tools that drive the API with only the cookie are accepted
  when the request is not cross-site: an ``Origin`` (or ``Referer``) header, when
  present, must name this host, and ``Sec-Fetch-Site``, when present, must be
  ``same-origin`` or ``none``. Browsers always send these on cross-site POSTs, so a
  foreign page cannot forge one; ``GET /api/staff/me`` returns the token for tools
  that want to send it.
- ``POST /staff/login`` itself is refused when its ``Origin`` names another site.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import keys
from bot.staff import api, dashboard, pages
from bot.staff.auth import StaffAuth
from bot.staff.canned import CannedResponses
from bot.staff.desk import StaffDesk
from bot.staff.guards import AUTH, CANNED, COOKIE, CSRF_HEADER, DESK, INBOX
from bot.staff.inbox import Inbox

__all__ = ["AUTH", "CANNED", "COOKIE", "CSRF_HEADER", "DESK", "INBOX", "setup", "staff_ctx"]


async def staff_ctx(app: web.Application) -> Any:
    """Runs after ``storage_ctx``: the desk, the auth service, and the queue rebuilt from the DB."""
    services = app[keys.SERVICES]
    app[AUTH] = StaffAuth(services.settings, services.db, services.redis)
    app[DESK] = StaffDesk(services)
    app[INBOX] = Inbox(services)
    app[CANNED] = CannedResponses(services.db)
    await services.handoff.sync_queue()
    yield


def setup(app: web.Application) -> None:
    """Mount the staff console and its API."""
    app.cleanup_ctx.append(staff_ctx)
    # Each module declares its routes beside its handlers (``@routes.get(...)``, which also
    # answers HEAD). They register in source order (stacked decorators: the lowest first);
    # aiohttp tries the resources that share a prefix, e.g. ``paths.CASE``, in that order.
    for table in (pages.routes, api.routes, dashboard.routes):
        app.router.add_routes(table)
