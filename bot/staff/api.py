"""The staff JSON API (``/api/staff/...``): the same desk as the pages, for scripts and tools.

Every handler is wrapped in ``api`` (``bot.staff.guards``): no session is a 401 JSON error,
POSTs pass the CSRF check, bad input is a 4xx JSON error. Each handler's route is declared
on it (``routes``, mounted by ``bot.staff.web.setup``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from bot import keys
from bot.core.errors import BadRequest
from bot.core.logs import mask_id_number
from bot.core.storage.models import Case, CaseMessage
from bot.records.cases import EVENTS_KEY, REASON_LABELS
from bot.records.reminders import staff_summary
from bot.staff.auth import StaffSession
from bot.staff.canned import canned_json
from bot.staff.desk import DECISIONS, aware, photo_available
from bot.staff.guards import CANNED, DESK, INBOX, api, audit_query, case_id_of, json_body, reminder_query
from bot.staff.inbox import CasePage, parse_filter
from bot.staff.paths import API_CASE
from bot.staff.render import AUDIT_PAGE_SIZE, STATUS_LABELS
from bot.staff.review import verdict

dumps = functools.partial(json.dumps, ensure_ascii=False)
SEARCH_PARAMS = {"q", "reason", "channel", "agent", "kind", "from", "to", "page"}
routes = web.RouteTableDef()


def _iso(value: datetime | None) -> str | None:
    value = aware(value)
    return value.isoformat() if value else None


def case_json(case: Case, page: CasePage | None = None) -> dict[str, Any]:
    """A case as the API gives it; with ``page`` (a search), also the unread mark and last user message."""
    extra: dict[str, Any] = {}
    if page is not None:
        extra = {"unread": case.id in page.unread, "last_user_message_at": _iso(page.last_user_at.get(case.id))}
    return extra | {
        "id": case.id, "user_id": case.user_id, "reason": case.reason,
        "reason_label": REASON_LABELS.get(case.reason, case.reason), "status": case.status,
        "channel": case.channel, "language": case.language or "zh", "created_at": _iso(case.created_at),
        "assigned_to": case.assigned_to, "decision": case.decision,
        "claimed_at": _iso(case.claimed_at), "closed_at": _iso(case.closed_at),
    }


def message_json(message: CaseMessage) -> dict[str, Any]:
    return {"id": message.id, "author": message.author, "text": message.text,
            "created_at": _iso(message.created_at)}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)


@routes.get("/api/staff/me")
@api
async def api_me(request: web.Request, staff: StaffSession) -> web.Response:
    return web.json_response({"username": staff.username, "role": staff.role, "csrf_token": staff.csrf})


@routes.get("/api/staff/cases")
@api
async def api_cases(request: web.Request, staff: StaffSession) -> web.Response:
    """The cases this staff member may see, a JSON list.

    Without parameters (or with ``status`` only) as ever: waiting cases oldest first, then the
    others newest first. With ``q``, ``reason``, ``channel``, ``agent``, ``kind``, ``from``,
    ``to`` or ``page``: one page of a search (20 a page), the total in ``X-Total-Count``."""
    if not SEARCH_PARAMS & set(request.query):
        status = request.query.get("status")
        if status is not None and status not in STATUS_LABELS:
            raise BadRequest("unknown status", code="invalid_status", user_message="状态不对。")
        cases = await request.app[DESK].list_cases(staff, status)
        return _json([case_json(c) for c in cases])
    f = parse_filter(request.query)
    inbox = request.app[INBOX]
    result = await inbox.search(staff, f, request.app[keys.SERVICES].handoff.tz)
    if f.searching:
        await inbox.audit_search(staff, f, result.total)
    response = _json([case_json(c, result) for c in result.cases])
    response.headers.update({"X-Total-Count": str(result.total), "X-Page": str(result.page),
                             "X-Page-Size": str(result.page_size), "X-Pages": str(result.pages)})
    return response


@routes.get("/api/staff/counts")
@api
async def api_counts(request: web.Request, staff: StaffSession) -> web.Response:
    """``{"waiting", "reviews", "unread", "attention"}``: what the tab title counts."""
    counts = await request.app[INBOX].counts(staff)
    return _json({"waiting": counts.waiting, "reviews": counts.reviews, "unread": counts.unread,
                  "attention": counts.attention})


@routes.get(API_CASE)
@api
async def api_case(request: web.Request, staff: StaffSession) -> web.Response:
    ctx = await request.app[DESK].context(staff, case_id_of(request))
    await request.app[keys.SERVICES].db.audit(staff.actor, "view_case", target=f"case:{ctx.case.id}")
    body = case_json(ctx.case)
    body.update({
        "transcript": ctx.case.transcript or [], "evidence": ctx.case.evidence or {},
        "proxy": ctx.case.proxy or {}, "note": ctx.case.note, "assignee": ctx.assignee,
        "messages": [message_json(m) for m in ctx.messages],
        "pensioner": None if ctx.pensioner is None else {
            "id": ctx.pensioner.id, "name": ctx.pensioner.name,
            "id_number": mask_id_number(ctx.pensioner.id_number),
            "next_due": ctx.pensioner.next_due.isoformat() if ctx.pensioner.next_due else None},
        "attempts": [{"id": a.id, "decision": a.decision, "quality_codes": a.quality_codes,
                      "distance": a.distance, "threshold": a.threshold, "verdict": verdict(a).words,
                      "photo": f"/staff/cases/{ctx.case.id}/photos/{a.id}" if photo_available(a) else None}
                     for a in ctx.attempts],
        "reference_photo": f"/staff/cases/{ctx.case.id}/reference-photo" if ctx.reference_available else None,
        "approval_concerns": ctx.concerns, "requested_by": ctx.requested_by,
        "related_cases": [case_json(c) for c in ctx.related],
    })
    return _json(body)


@routes.get(f"{API_CASE}/messages")
@api
async def api_messages(request: web.Request, staff: StaffSession) -> web.Response:
    desk = request.app[DESK]
    case = await desk.visible_case(staff, case_id_of(request))
    try:
        after = int(request.query.get("after", "0"))
    except ValueError as exc:
        raise BadRequest("after must be a number", code="invalid_after") from exc
    return _json([message_json(m) for m in await desk.messages(case.id, after)])


@routes.post(API_CASE + "/{action:claim|handback}")
@api
async def api_claim_or_hand_back(request: web.Request, staff: StaffSession) -> web.Response:
    """Take the case (``claim``) or give the chat back to the assistant (``handback``); no body."""
    desk = request.app[DESK]
    change = desk.claim if request.match_info["action"] == "claim" else desk.hand_back
    return _json(case_json(await change(staff, case_id_of(request))))


@routes.post(f"{API_CASE}/messages")
@api
async def api_send(request: web.Request, staff: StaffSession) -> web.Response:
    return await _written(request, staff, request.app[DESK].reply)


@routes.post(f"{API_CASE}/notes")
@api
async def api_note(request: web.Request, staff: StaffSession) -> web.Response:
    return await _written(request, staff, request.app[DESK].note)


async def _written(request: web.Request, staff: StaffSession,
                   write: Callable[[StaffSession, int, Any], Awaitable[CaseMessage]]) -> web.Response:
    """A reply or note ``{"text"}`` the staff member wrote on the case: 201 with the message."""
    body = await json_body(request)
    return _json(message_json(await write(staff, case_id_of(request), body.get("text"))), status=201)


@routes.post(f"{API_CASE}/resolve")
@api
async def api_resolve(request: web.Request, staff: StaffSession) -> web.Response:
    body = await json_body(request)
    if body.get("decision") not in DECISIONS:
        raise BadRequest(f"decision must be one of {DECISIONS}", code="invalid_decision",
                         user_message="处理结果不对。")
    case = await request.app[DESK].resolve(staff, case_id_of(request), body.get("decision"), body.get("note"),
                                           acknowledge_other_cases=body.get("acknowledge_other_cases") is True)
    return _json(case_json(case), status=202 if case.status == "signoff" else 200)


@routes.post(f"{API_CASE}/signoff")
@api
async def api_signoff(request: web.Request, staff: StaffSession) -> web.Response:
    """Supervisor: ``{"approve": true|false, "note"}`` on an approval waiting in ``signoff``."""
    body = await json_body(request)
    case = await request.app[DESK].signoff(staff, case_id_of(request), body.get("approve"), body.get("note"))
    return _json(case_json(case))


@routes.post(f"{API_CASE}/assign")
@api
async def api_assign(request: web.Request, staff: StaffSession) -> web.Response:
    body = await json_body(request)
    case = await request.app[DESK].assign(staff, case_id_of(request), body.get("username"))
    return _json(case_json(case))


@routes.post("/api/staff/pull")
@api
async def api_pull(request: web.Request, staff: StaffSession) -> web.Response:
    body = await json_body(request)
    case = await request.app[DESK].pull(staff, body.get("conversation_key"))
    return _json(case_json(case), status=201)


@routes.get("/api/staff/recent")
@api
async def api_recent(request: web.Request, staff: StaffSession) -> web.Response:
    handoff = request.app[keys.SERVICES].handoff
    out = []
    for key, at in await handoff.recent(50):
        conv = await handoff.conversations.load(key)
        if not conv.is_new:
            out.append({"conversation_key": key, "mode": conv.mode, "last_at": at, "case_id": conv.case_id})
    return _json(out)


@routes.get("/api/staff/send-failures")
@api
async def api_send_failures(request: web.Request, staff: StaffSession) -> web.Response:
    """Messages the channels gave up delivering: all for supervisors, ``?case_id=`` for one case."""
    raw_case, raw_limit = request.query.get("case_id"), request.query.get("limit", "50")
    if (raw_case is not None and not raw_case.isdigit()) or not raw_limit.isdigit():
        raise BadRequest("case_id and limit must be numbers", code="invalid_query", user_message="参数不对。")
    failures = await request.app[DESK].send_failures(
        staff, int(raw_case) if raw_case is not None else None, limit=int(raw_limit))
    return _json([f.to_json() for f in failures])


@routes.get("/api/staff/events")
@api
async def api_events(request: web.Request, staff: StaffSession) -> web.Response:
    """Events from the Redis stream after ``after`` (a stream id), at most 100."""
    after = request.query.get("after", "0-0")
    parts = after.split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise BadRequest("after must be a stream id", code="invalid_after")
    redis = request.app[keys.SERVICES].redis
    rows = await redis.xrange(EVENTS_KEY, min=f"({after}", max="+", count=100)
    events = []
    for event_id, fields in rows:
        data = json.loads(fields.get(b"data", b"{}"))
        if not staff.is_supervisor and data.get("case_id") is not None:
            data = {"case_id": data["case_id"]}
        events.append({"id": event_id.decode(), "kind": fields.get(b"kind", b"").decode(), "data": data})
    return _json({"events": events, "last": events[-1]["id"] if events else after})


@routes.get("/api/staff/audit")
@api
async def api_audit(request: web.Request, staff: StaffSession) -> web.Response:
    who, page_no = audit_query(request)
    rows, total = await request.app[DESK].audit_entries(staff, actor=who, offset=(page_no - 1) * AUDIT_PAGE_SIZE)
    return _json({"total": total, "entries": [
        {"id": r.id, "at": _iso(r.at), "actor": r.actor, "action": r.action, "target": r.target,
         "details": r.details or {}} for r in rows]})


@routes.get("/api/staff/reminders")
@api
async def api_reminders(request: web.Request, staff: StaffSession) -> web.Response:
    """``GET /api/staff/reminders[?pensioner_id=N][&status=send_failed][&page=N]``: reminder
    subscriptions and deliveries (100 deliveries a page, ``deliveries_total`` in all)."""
    raw = request.query.get("pensioner_id")
    if raw is not None and not raw.isdigit():
        raise BadRequest("pensioner_id must be a number", code="invalid_query", user_message="参数不对。")
    status, page_no = reminder_query(request)
    summary = await staff_summary(request.app[keys.SERVICES].db, int(raw) if raw is not None else None,
                                  status=status, offset=(page_no - 1) * 100)
    return _json(summary)


@routes.get("/api/staff/canned")
@api
async def api_canned(request: web.Request, staff: StaffSession) -> web.Response:
    """``GET /api/staff/canned``: the canned responses (常用语), for every staff member."""
    return _json([canned_json(row) for row in await request.app[CANNED].all()])


@routes.post("/api/staff/canned")
@api
async def api_canned_add(request: web.Request, staff: StaffSession) -> web.Response:
    """Supervisors: ``{"shortcut", "text"}`` → 201; 409 ``duplicate_shortcut``."""
    body = await json_body(request)
    row = await request.app[CANNED].add(staff, body.get("shortcut"), body.get("text"))
    return _json(canned_json(row), status=201)


@routes.put(r"/api/staff/canned/{canned_id:\d+}")
@api
async def api_canned_update(request: web.Request, staff: StaffSession) -> web.Response:
    body = await json_body(request)
    row = await request.app[CANNED].update(staff, int(request.match_info["canned_id"]), body.get("shortcut"),
                                           body.get("text"))
    return _json(canned_json(row))


@routes.delete(r"/api/staff/canned/{canned_id:\d+}")
@api
async def api_canned_delete(request: web.Request, staff: StaffSession) -> web.Response:
    await request.app[CANNED].delete(staff, int(request.match_info["canned_id"]))
    return _json({"deleted": int(request.match_info["canned_id"])})
