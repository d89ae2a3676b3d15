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
from bot.staff.guards import AUTH, CANNED, COOKIE, CSRF_HEADER, DESK, INBOX, Handler
from bot.staff.inbox import Inbox

__all__ = ["AUTH", "CANNED", "COOKIE", "CSRF_HEADER", "DESK", "INBOX", "ROUTES", "setup", "staff_ctx"]

CASE = r"/staff/cases/{case_id:\d+}"
API_CASE = r"/api/staff/cases/{case_id:\d+}"
# (method, path, handler): the pages (``bot.staff.pages``), then the JSON API (``bot.staff.api``);
# the agency dashboard's page and API are in ``bot.staff.dashboard``.
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/staff/login", pages.login_page),
    ("POST", "/staff/login", pages.login),
    ("POST", "/staff/logout", pages.logout),
    ("GET", "/staff", pages.queue_page),
    ("GET", "/staff/", pages.queue_page),
    ("GET", "/staff/fragments/{part:reviews|queue|mine|done|recent|failures}", pages.queue_fragment),
    ("GET", "/staff/search", pages.search_page),
    ("GET", CASE, pages.case_page),
    ("GET", f"{CASE}/fragments/messages", pages.messages_fragment),
    ("GET", f"{CASE}/fragments/failures", pages.case_failures_fragment),
    ("GET", f"{CASE}/fragments/head", pages.head_fragment),
    ("POST", CASE + "/{action:claim|reply|note|resolve|handback|assign|signoff|resend}", pages.case_action),
    ("GET", CASE + r"/photos/{attempt_id:\d+}", pages.photo),
    ("GET", CASE + r"/files/{name:[0-9a-f]{32}\.img}", pages.case_file),
    ("GET", f"{CASE}/reference-photo", pages.reference_photo),
    ("POST", "/staff/pull", pages.pull_form),
    ("GET", "/staff/users", pages.users_page),
    ("POST", "/staff/users", pages.users_add),
    ("POST", r"/staff/users/{user_id:\d+}/{action:activate|deactivate|unlock}", pages.users_change),
    ("GET", "/staff/audit", pages.audit_page),
    ("GET", "/staff/reminders", pages.reminders_page),
    ("GET", "/staff/canned", pages.canned_page),
    ("POST", "/staff/canned", pages.canned_add),
    ("POST", r"/staff/canned/{canned_id:\d+}/{action:update|delete}", pages.canned_change),
    ("GET", "/api/staff/canned", api.api_canned),
    ("POST", "/api/staff/canned", api.api_canned_add),
    ("PUT", r"/api/staff/canned/{canned_id:\d+}", api.api_canned_update),
    ("DELETE", r"/api/staff/canned/{canned_id:\d+}", api.api_canned_delete),
    ("GET", "/staff/dashboard", dashboard.dashboard_page),
    ("GET", "/api/staff/audit", api.api_audit),
    ("GET", "/api/staff/me", api.api_me),
    ("GET", "/api/staff/cases", api.api_cases),
    ("GET", "/api/staff/counts", api.api_counts),
    ("GET", API_CASE, api.api_case),
    ("GET", f"{API_CASE}/messages", api.api_messages),
    ("POST", f"{API_CASE}/claim", api.api_claim),
    ("POST", f"{API_CASE}/messages", api.api_send),
    ("POST", f"{API_CASE}/notes", api.api_note),
    ("POST", f"{API_CASE}/resolve", api.api_resolve),
    ("POST", f"{API_CASE}/signoff", api.api_signoff),
    ("POST", f"{API_CASE}/handback", api.api_handback),
    ("POST", f"{API_CASE}/assign", api.api_assign),
    ("POST", "/api/staff/pull", api.api_pull),
    ("GET", "/api/staff/recent", api.api_recent),
    ("GET", "/api/staff/events", api.api_events),
    ("GET", "/api/staff/send-failures", api.api_send_failures),
    ("GET", "/api/staff/reminders", api.api_reminders),
    ("GET", "/api/staff/stats", dashboard.api_stats),
]


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
    for method, path, handler in ROUTES:
        if method == "GET":
            app.router.add_get(path, handler)  # also answers HEAD, as aiohttp's GET routes do
        else:
            app.router.add_route(method, path, handler)
