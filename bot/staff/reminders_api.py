"""``GET /api/staff/reminders[?pensioner_id=N]``: reminder subscriptions and deliveries (read-only).

Failed reminder deliveries also appear in the console's send-failure list (audit ``send_failed``).
"""

from __future__ import annotations

from aiohttp import web

from bot import keys
from bot.errors import BadRequest
from bot.reminders import staff_summary
from bot.staff.auth import StaffSession
from bot.staff.web import api, dumps


@api
async def api_reminders(request: web.Request, staff: StaffSession) -> web.Response:
    raw = request.query.get("pensioner_id")
    if raw is not None and not raw.isdigit():
        raise BadRequest("pensioner_id must be a number", code="invalid_query", user_message="参数不对。")
    summary = await staff_summary(request.app[keys.SERVICES].db, int(raw) if raw is not None else None)
    return web.json_response(summary, dumps=dumps)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/staff/reminders", api_reminders)
