"""Who may make a staff request, and how: sessions, CSRF checks, same-site checks.

The ``api`` and ``html_page`` decorators wrap every handler that needs a session; the
small response helpers here (layout page, fragment, redirect, private file) are shared by
the pages and by the guards' own error pages.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from bot import keys
from bot.core.errors import BadRequest, BotError, Forbidden, Unauthorized
from bot.records.reminders import DELIVERY_STATUSES
from bot.staff import render
from bot.staff.auth import StaffAuth, StaffSession
from bot.staff.canned import CannedResponses
from bot.staff.desk import StaffDesk
from bot.staff.inbox import Inbox

COOKIE = "staff_session"
CSRF_HEADER = "X-CSRF-Token"
AUTH = web.AppKey("staff_auth", StaffAuth)
DESK = web.AppKey("staff_desk", StaffDesk)
INBOX = web.AppKey("staff_inbox", Inbox)
CANNED = web.AppKey("staff_canned", CannedResponses)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
StaffHandler = Callable[[web.Request, StaffSession], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------- responses


def page(title: str, body: str, staff: StaffSession | None = None, status: int = 200,
         script: str = "") -> web.Response:
    """A full page: the layout around ``body`` (already-escaped HTML), never cached or framed."""
    response = web.Response(text=render.layout(title, body, staff, script), status=status,
                            content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def fragment(html: str) -> web.Response:
    """A piece of a page the page's script fetches to refresh itself."""
    response = web.Response(text=html, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


def see_other(location: str) -> web.Response:
    """A 303 redirect (a plain response, so cookies set on it are kept)."""
    return web.Response(status=303, headers={"Location": quote(location, safe="/?=&")})


def private_file(data: bytes, content_type: str) -> web.Response:
    """A photo or file of a case: never cached, never sniffed."""
    return web.Response(body=data, content_type=content_type,
                        headers={"Cache-Control": "no-store, private", "X-Content-Type-Options": "nosniff"})


def wants_inline(request: web.Request) -> bool:
    """The page's script submitted a form with fetch: answer JSON, show errors beside the form."""
    return request.headers.get("X-Requested-With") == "fetch"


def done(request: web.Request, path: str, message: str) -> web.Response:
    """After a form action: back to ``path`` with a flash line (JSON ``location`` for the script)."""
    location = f"{path}?msg={message}"
    if wants_inline(request):
        return web.json_response({"ok": True, "message": message, "location": quote(location, safe="/?=&")},
                                 dumps=functools.partial(json.dumps, ensure_ascii=False))
    return see_other(location)


def inline_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status,
                             dumps=functools.partial(json.dumps, ensure_ascii=False))


# ---------------------------------------------------------------- checks


def same_site(request: web.Request) -> bool:
    """False when the browser says this request comes from another site."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    for header in ("Origin", "Referer"):
        value = request.headers.get(header)
        if value is None:
            continue
        if value == "null":
            return False
        allowed = {request.host}
        public = request.app[keys.SETTINGS].server.public_base_url
        if public:
            allowed.add(urlsplit(public).netloc)
        return urlsplit(value).netloc in allowed
    return True


async def current_staff(request: web.Request) -> StaffSession | None:
    return await request.app[AUTH].load_session(request.cookies.get(COOKIE))


def require_csrf_form(staff: StaffSession, form: Any) -> None:
    token = form.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(token, staff.csrf):
        raise Forbidden("missing or wrong CSRF token", user_message="页面已过期，请刷新后再试。")


def require_csrf_api(request: web.Request, staff: StaffSession) -> None:
    token = request.headers.get(CSRF_HEADER)
    if token is not None:
        if not hmac.compare_digest(token, staff.csrf):
            raise Forbidden("wrong CSRF token", user_message="页面已过期，请刷新后再试。")
        return
    if not same_site(request):
        raise Forbidden("cross-site request refused", user_message="请求来源不对。")


def require_supervisor(staff: StaffSession) -> None:
    if not staff.is_supervisor:
        raise Forbidden("supervisors only", user_message="只有主管可以管理工作人员。")


# ---------------------------------------------------------------- decorators


def api(handler: StaffHandler) -> Handler:
    """A JSON endpoint that needs a session (401 JSON); POST, PUT and DELETE pass the CSRF check."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        staff = await current_staff(request)
        if staff is None:
            raise Unauthorized("no staff session", user_message="请先登录。")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            require_csrf_api(request, staff)
        return await handler(request, staff)

    return wrapper


def html_page(handler: StaffHandler) -> Handler:
    """A page that needs a session (redirect to login); form POSTs need the CSRF token.

    Deliberate errors become a Chinese error page instead of JSON; for a form the page's
    script sent with fetch (``wants_inline``) they are JSON, shown beside the form."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        staff = await current_staff(request)
        if staff is None:
            if request.method == "GET":
                raise web.HTTPSeeOther("/staff/login")
            if wants_inline(request):
                return inline_error(401, "unauthorized", "登录已过期，请重新登录。")
            return page("请先登录", render.error_body("请先登录", "登录已过期，请重新登录。"), status=401)
        try:
            if request.method == "POST":
                require_csrf_form(staff, await request.post())
            return await handler(request, staff)
        except BotError as exc:
            if exc.status >= 500:
                raise
            if wants_inline(request) and request.method == "POST":
                return inline_error(exc.status, exc.code, exc.user_message)
            return page("操作没有成功", render.error_body("操作没有成功", exc.user_message), staff,
                        status=exc.status)

    return wrapper


# ---------------------------------------------------------------- request parts


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"invalid JSON: {exc}", code="invalid_json", user_message="请求格式不对。") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object", code="invalid_json", user_message="请求格式不对。")
    return body


def case_id_of(request: web.Request) -> int:
    return int(request.match_info["case_id"])


def audit_query(request: web.Request) -> tuple[str | None, int]:
    """The audit log's ``?staff=`` filter and ``?page=`` number, checked."""
    who = request.query.get("staff") or None
    raw_page = request.query.get("page", "1")
    if (who is not None and len(who) > 64) or not raw_page.isdigit():
        raise BadRequest("bad filter", code="invalid_query", user_message="参数不对。")
    return who, max(1, int(raw_page))


def reminder_query(request: web.Request) -> tuple[str | None, int]:
    """The reminders list's ``?status=`` (a delivery state) and ``?page=``, checked."""
    status = request.query.get("status") or None
    raw_page = request.query.get("page", "1")
    if (status is not None and status not in DELIVERY_STATUSES) or not raw_page.isdigit() or raw_page == "0":
        raise BadRequest("bad filter", code="invalid_query", user_message="参数不对。")
    return status, int(raw_page)
