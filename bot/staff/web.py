"""The staff console (``/staff``, server-rendered Chinese pages) and its JSON API.

Pages: ``/staff/login``, ``/staff`` (queue, my cases, live chats), ``/staff/cases/{id}``,
``/staff/users`` (supervisors). Live updates: a small script polls ``/api/staff/events``,
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

import functools
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from bot import keys
from bot.core.errors import BadRequest, BotError, Forbidden, Unauthorized
from bot.core.logs import mask, mask_id_number
from bot.core.outbox import DeliveryFailed
from bot.core.storage.models import Case, CaseMessage
from bot.records.cases import EVENTS_KEY, REASON_LABELS
from bot.records.reminders import staff_summary
from bot.staff.auth import LockedOut, LoginFailed, StaffAuth, StaffSession
from bot.staff.desk import (
    DECISIONS,
    QUICK_REPLIES,
    CaseContext,
    SendFailure,
    StaffDesk,
    aware,
    photo_available,
)
from bot.staff.review import bar_percent, detail_items, pensioner_state, quality_words, verdict

TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "staff_session"
CSRF_HEADER = "X-CSRF-Token"
AUTH = web.AppKey("staff_auth", StaffAuth)
DESK = web.AppKey("staff_desk", StaffDesk)
STATUS_LABELS = {"waiting": "排队中", "claimed": "处理中", "signoff": "待主管复核", "closed": "已结束",
                 "cancelled": "用户已取消"}
DECISION_LABELS = {"approved": "审核通过", "rejected": "不通过", "resolved": "已解决（无认证结论）",
                   "handed_back": "交还小助手"}
CHANNEL_LABELS = {"web": "网页", "wechat": "微信", "telegram": "Telegram", "cli": "终端"}
AUTHOR_LABELS = {"user": "用户", "staff": "工作人员", "bot": "小助手", "note": "内部备注",
                 "feedback": "用户反馈"}
dumps = functools.partial(json.dumps, ensure_ascii=False)
EVIDENCE_LABELS = {"attempts": "尝试次数", "quality_codes": "质量问题", "distances": "距离",
                   "distance": "距离", "threshold": "阈值", "decision": "结果", "model": "模型",
                   "attempt_ids": "记录编号", "method": "方式"}
PHOTO_MARK = re.compile(r"\[照片 ([0-9a-f]{32}\.img)\]")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------- helpers


@functools.cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def fmt_time(value: datetime | float | None, tz: Any = None) -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    value = aware(value)
    assert value is not None
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if tz else value.strftime("%Y-%m-%d %H:%M")


def waited(created: datetime) -> str:
    seconds = max(0, int(time.time() - (aware(created) or created).timestamp()))
    if seconds < 60:
        return "不到1分钟"
    if seconds < 3600:
        return f"{seconds // 60}分钟"
    return f"{seconds // 3600}小时{seconds % 3600 // 60}分钟"


def page(request: web.Request, title: str, body: str, staff: StaffSession | None = None,
         status: int = 200, script: str = "") -> web.Response:
    """The layout around ``body`` (already-escaped HTML)."""
    nav = ""
    if staff is not None:
        links = ['<a href="/staff">队列</a>']
        if staff.is_supervisor:
            links.append('<a href="/staff/users">工作人员</a>')
            links.append('<a href="/staff/audit">审计记录</a>')
            links.append('<a href="/staff/dashboard">数据看板</a>')
        nav = " ".join(links) + (
            f'<span class="who">{escape(staff.username)}（{"主管" if staff.is_supervisor else "办事员"}）'
            f' <form method="post" action="/staff/logout"><input type="hidden" name="csrf" '
            f'value="{escape(staff.csrf)}"><button type="submit">退出</button></form></span>')
    html = _template("layout.html").substitute(
        title=escape(title), nav=nav, body=body, script=script,
        csrf=escape(staff.csrf) if staff else "")
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def see_other(location: str) -> web.Response:
    """A 303 redirect (a plain response, so cookies set on it are kept)."""
    return web.Response(status=303, headers={"Location": quote(location, safe="/?=&")})


def fragment(html: str) -> web.Response:
    response = web.Response(text=html, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


def hidden_csrf(staff: StaffSession) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(staff.csrf)}">'


def post_button(staff: StaffSession, action: str, label: str, extra: str = "",
                button_id: str = "") -> str:
    ident = f' id="{button_id}"' if button_id else ""
    return (f'<form method="post" action="{escape(action)}" style="display:inline">{hidden_csrf(staff)}'
            f'{extra}<button type="submit"{ident}>{escape(label)}</button></form>')


def _iso(value: datetime | None) -> str | None:
    value = aware(value)
    return value.isoformat() if value else None


def case_json(case: Case) -> dict[str, Any]:
    created = aware(case.created_at)
    return {
        "id": case.id, "user_id": case.user_id, "reason": case.reason,
        "reason_label": REASON_LABELS.get(case.reason, case.reason), "status": case.status,
        "channel": case.channel, "created_at": created.isoformat() if created else None,
        "assigned_to": case.assigned_to, "decision": case.decision,
        "claimed_at": _iso(case.claimed_at), "closed_at": _iso(case.closed_at),
    }


def message_json(message: CaseMessage) -> dict[str, Any]:
    created = aware(message.created_at)
    return {"id": message.id, "author": message.author, "text": message.text,
            "created_at": created.isoformat() if created else None}


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


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


def _require_csrf_form(staff: StaffSession, form: Any) -> None:
    token = form.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(token, staff.csrf):
        raise Forbidden("missing or wrong CSRF token", user_message="页面已过期，请刷新后再试。")


def _require_csrf_api(request: web.Request, staff: StaffSession) -> None:
    token = request.headers.get(CSRF_HEADER)
    if token is not None:
        if not hmac.compare_digest(token, staff.csrf):
            raise Forbidden("wrong CSRF token", user_message="页面已过期，请刷新后再试。")
        return
    if not same_site(request):
        raise Forbidden("cross-site request refused", user_message="请求来源不对。")


def api(handler: Callable[[web.Request, StaffSession], Awaitable[web.StreamResponse]]) -> Handler:
    """A JSON endpoint that needs a session (401 JSON) and, for POSTs, passes the CSRF check."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        staff = await current_staff(request)
        if staff is None:
            raise Unauthorized("no staff session", user_message="请先登录。")
        if request.method == "POST":
            _require_csrf_api(request, staff)
        return await handler(request, staff)

    return wrapper


def html_page(handler: Callable[[web.Request, StaffSession], Awaitable[web.StreamResponse]]) -> Handler:
    """A page that needs a session (redirect to login); form POSTs need the CSRF token.

    Deliberate errors become a Chinese error page instead of JSON."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        staff = await current_staff(request)
        if staff is None:
            if request.method == "GET":
                raise web.HTTPSeeOther("/staff/login")
            return page(request, "请先登录", _template("error.html").substitute(
                title="请先登录", message="登录已过期，请重新登录。"), status=401)
        try:
            if request.method == "POST":
                _require_csrf_form(staff, await request.post())
            return await handler(request, staff)
        except BotError as exc:
            if exc.status >= 500:
                raise
            return page(request, "操作没有成功", _template("error.html").substitute(
                title="操作没有成功", message=escape(exc.user_message)), staff, status=exc.status)

    return wrapper


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


# ---------------------------------------------------------------- login / logout


async def login_page(request: web.Request) -> web.Response:
    if await current_staff(request) is not None:
        raise web.HTTPSeeOther("/staff")
    return page(request, "登录", _template("login.html").substitute(error=""))


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


async def login(request: web.Request) -> web.StreamResponse:
    """Form ``username`` + ``password``; sets the session cookie."""
    settings = request.app[keys.SETTINGS]
    if not same_site(request):
        raise Forbidden("cross-site login refused", user_message="请求来源不对。")
    form = await request.post()
    username, password = form.get("username"), form.get("password")
    if (not isinstance(username, str) or not isinstance(password, str) or not username or not password
            or len(username) > 64 or len(password) > 1024):
        error: BotError = BadRequest("username and password required", code="missing_credentials",
                                     user_message="请填写用户名和密码。")
    else:
        try:
            user = await request.app[AUTH].authenticate(username.strip(), password, request.remote)
        except (LoginFailed, LockedOut) as exc:
            error = exc
        else:
            staff = await request.app[AUTH].start_session(user)
            await request.app[keys.SERVICES].db.audit(staff.actor, "login")
            if _wants_json(request):
                response = web.json_response({"username": staff.username, "role": staff.role,
                                              "csrf_token": staff.csrf})
            else:
                response = see_other("/staff")
            response.set_cookie(COOKIE, staff.token, httponly=True, samesite="Strict", path="/",
                                secure=settings.staff.secure_cookies,
                                max_age=settings.staff.session_ttl_s)
            return response
    if _wants_json(request):
        return web.json_response({"error": error.code, "message": error.user_message}, status=error.status)
    body = _template("login.html").substitute(error=f'<p class="error">{escape(error.user_message)}</p>')
    return page(request, "登录", body, status=error.status)


async def logout(request: web.Request) -> web.StreamResponse:
    staff = await current_staff(request)
    if staff is not None:
        _require_csrf_form(staff, await request.post())
        await request.app[AUTH].end_session(staff.token)
        await request.app[keys.SERVICES].db.audit(staff.actor, "logout")
    response = see_other("/staff/login")
    response.del_cookie(COOKIE, path="/")
    return response


# ---------------------------------------------------------------- queue page


def render_case_rows(cases: list[Case], empty: str, names: dict[int, str] | None = None,
                     inactive: set[int] | None = None) -> str:
    if not cases:
        return f"<p>{escape(empty)}</p>"
    rows = []
    for case in cases:
        who = escape((names or {}).get(case.assigned_to or -1, "—"))
        if inactive and case.assigned_to in inactive and case.status in ("claimed", "signoff"):
            who += (f' <a class="warn" href="/staff/cases/{case.id}">（已停用，请重新分配）</a>')
        rows.append(
            f'<tr data-case="{case.id}"><td><a href="/staff/cases/{case.id}">#{case.id}</a></td>'
            f"<td>{escape(REASON_LABELS.get(case.reason, case.reason))}</td>"
            f"<td>{escape(CHANNEL_LABELS.get(case.channel, case.channel))}</td>"
            f'<td class="status-{escape(case.status)}">{escape(STATUS_LABELS.get(case.status, case.status))}</td>'
            f"<td>{escape(waited(case.created_at)) if case.status == 'waiting' else '—'}</td>"
            f"<td>{who}</td>"
            f'<td><a href="/staff/cases/{case.id}">查看</a></td></tr>')
    return ("<table><tr><th>案件</th><th>原因</th><th>渠道</th><th>状态</th><th>已等待</th>"
            "<th>处理人</th><th></th></tr>" + "".join(rows) + "</table>")


async def _queue_parts(request: web.Request, staff: StaffSession) -> dict[str, str]:
    desk = request.app[DESK]
    cases = await desk.list_cases(staff)
    auth = request.app[AUTH]
    users = await auth.users()
    names = {u.id: u.username for u in users}
    inactive = {u.id for u in users if not u.active}
    waiting = [c for c in cases if c.status == "waiting"]
    if staff.is_supervisor:
        mine = [c for c in cases if c.status in ("claimed", "signoff")]
    else:
        mine = [c for c in cases if c.status in ("claimed", "signoff") and c.assigned_to == staff.staff_id]
    done = [c for c in cases if c.status in ("closed", "cancelled")][:20]
    failures = ""
    if staff.is_supervisor:
        failures = render_failures(await desk.send_failures(staff, limit=30),
                                   request.app[keys.SERVICES].handoff.tz)
    return {"queue": render_case_rows(waiting, "现在没有排队的案件。"),
            "mine": render_case_rows(mine, "没有正在处理的案件。", names, inactive),
            "done": render_case_rows(done, "还没有结束的案件。", names), "failures": failures}


def render_failures(failures: list[SendFailure], tz: Any, empty: str = "没有发送失败的消息。",
                    resend: StaffSession | None = None) -> str:
    """The 发送失败 table: messages a channel gave up delivering after its retries.

    With ``resend`` (the staff member on a case page) each row has a 重发 button."""
    if not failures:
        return f'<p class="meta">{escape(empty)}</p>'
    rows = []
    for f in failures:
        case = f'<a href="/staff/cases/{f.case_id}">#{f.case_id}</a>' if f.case_id else "—"
        rows.append(f'<tr class="send-failed"><td>{escape(fmt_time(f.at, tz))}</td>'
                    f"<td>{escape(CHANNEL_LABELS.get(f.channel, f.channel))}</td>"
                    f"<td>{escape(f.user_id[:24])}</td><td>{case}</td><td>{escape(f.text[:80])}</td>"
                    f"<td>{escape(f.error[:80])}</td><td>{f.attempts or '—'}"
                    + (post_button(resend, f"/staff/cases/{f.case_id}/resend", "重发",
                                   f'<input type="hidden" name="failure" value="{f.id}">')
                       if resend is not None and f.case_id else "") + "</td></tr>")
    return ("<table><tr><th>时间</th><th>渠道</th><th>用户</th><th>案件</th><th>消息</th><th>原因</th>"
            "<th>尝试次数</th></tr>" + "".join(rows) + "</table>")


async def _recent_html(request: web.Request, staff: StaffSession) -> str:
    services = request.app[keys.SERVICES]
    rows = []
    for key, at in await services.handoff.recent(30):
        conv = await services.handoff.conversations.load(key)
        if conv.is_new:
            continue
        last = next((t["text"] for t in reversed(conv.transcript) if t.get("role") == "user"), "")
        mode = {"bot": "小助手", "waiting": "排队中", "human": "人工处理中", "closed": "刚结束"}.get(conv.mode, conv.mode)
        channel = CHANNEL_LABELS.get(conv.channel, conv.channel)
        action = ""
        if conv.mode != "human":
            action = post_button(staff, "/staff/pull", "接入",
                                 f'<input type="hidden" name="conversation_key" value="{escape(key)}">')
        rows.append(f"<tr><td>{escape(channel)}</td><td>{escape(conv.user_id[:24])}</td>"
                    f"<td>{escape(mask(last)[:60])}</td><td>{escape(mode)}</td>"
                    f"<td>{escape(fmt_time(at, services.handoff.tz))}</td><td>{action}</td></tr>")
    if not rows:
        return "<p>最近没有对话。</p>"
    return ("<table><tr><th>渠道</th><th>用户</th><th>最后一句</th><th>状态</th><th>时间</th><th></th></tr>"
            + "".join(rows) + "</table>")


async def _last_event_id(request: web.Request) -> str:
    rows = await request.app[keys.SERVICES].redis.xrevrange(EVENTS_KEY, count=1)
    return rows[0][0].decode() if rows else "0-0"


@html_page
async def queue_page(request: web.Request, staff: StaffSession) -> web.Response:
    parts = await _queue_parts(request, staff)
    parts["recent"] = await _recent_html(request, staff)
    flash = request.query.get("msg", "")
    failures = parts.pop("failures")
    if failures:
        failures = f'<section><h2>发送失败（重试后仍没送到用户）</h2><div id="failures">{failures}</div></section>'
    body = _template("queue.html").substitute(
        failures=failures, flash=f'<p class="ok">{escape(flash[:100])}</p>' if flash else "",
        mine_title="所有处理中的案件" if staff.is_supervisor else "我正在处理的案件",
        done_title="最近结束的案件（全部）" if staff.is_supervisor else "我最近结束的案件", **parts)
    after = await _last_event_id(request)
    script = ("<script>pollFragments([['queue','/staff/fragments/queue'],['mine','/staff/fragments/mine'],"
              "['recent','/staff/fragments/recent'],['done','/staff/fragments/done'],"
              f"['failures','/staff/fragments/failures']], "
              f"{json.dumps(after)});</script>")
    return page(request, "队列", body, staff, script=script)


@html_page
async def queue_fragment(request: web.Request, staff: StaffSession) -> web.Response:
    part = request.match_info["part"]
    if part == "recent":
        return fragment(await _recent_html(request, staff))
    if part == "failures" and not staff.is_supervisor:
        raise Forbidden("supervisors only", user_message="只有主管可以查看全部发送失败记录。")
    return fragment((await _queue_parts(request, staff))[part])


# ---------------------------------------------------------------- case page


def render_messages(case_id: int, ctx_messages: list[CaseMessage], names: dict[int, str], tz: Any) -> str:
    if not ctx_messages:
        return '<p class="meta">还没有消息。</p>'
    out = []
    for m in ctx_messages:
        who = AUTHOR_LABELS.get(m.author, m.author)
        if m.staff_id and m.author in ("staff", "note"):
            who += f" {names.get(m.staff_id, '')}"
        text = PHOTO_MARK.sub(lambda match: f'<img class="photo" alt="用户发来的照片" '
                              f'src="/staff/cases/{case_id}/files/{match.group(1)}">', escape(m.text))
        out.append(f'<div class="msg {escape(m.author)}"><span class="meta">{escape(who)} · '
                   f"{escape(fmt_time(m.created_at, tz))}</span>\n{text}</div>")
    return "".join(out)


def render_transcript(transcript: list[dict[str, Any]], tz: Any) -> str:
    if not transcript:
        return '<p class="meta">没有记录。</p>'
    out = []
    for entry in transcript:
        role = "user" if entry.get("role") == "user" else "bot"
        at = entry.get("at")
        out.append(f'<div class="msg {role}"><span class="meta">{"用户" if role == "user" else "小助手"} · '
                   f"{escape(fmt_time(float(at), tz)) if isinstance(at, (int, float)) else ''}</span>\n"
                   f"{escape(str(entry.get('text', '')))}</div>")
    return "".join(out)


def render_pensioner(ctx: CaseContext, tz: Any) -> str:
    p = ctx.pensioner
    if p is None:
        return '<p class="meta">还不知道是哪位退休人员。</p>'
    state = pensioner_state(p, datetime.now(tz).date())
    return ("<table>"
            f"<tr><th>姓名</th><td>{escape(p.name)}</td></tr>"
            f"<tr><th>身份证号</th><td>{escape(mask_id_number(p.id_number))}</td></tr>"
            f"<tr><th>地区</th><td>{escape(p.region or '—')}</td></tr>"
            f"<tr><th>状态</th><td class=\"{state[0]}\">{escape(state[1])}</td></tr>"
            f"<tr><th>上次认证</th><td>{escape(fmt_time(p.certified_at, tz))}（{escape(p.certified_by or '—')}）</td></tr>"
            f"<tr><th>下次到期</th><td>{escape(str(p.next_due or '—'))}</td></tr></table>")


def _attempt_row(ctx: CaseContext, a: Any, tz: Any, reference: str, now: datetime) -> str:
    """One attempt: the enrolled photo beside the selfie, the verdict in words, the distance bar."""
    v = verdict(a)
    selfie = '<p class="meta">照片已过保存期限</p>' if a.photo_path else '<p class="meta">没有保存照片</p>'
    if photo_available(a, now):
        selfie = f'<img class="photo selfie" alt="这次的自拍" src="/staff/cases/{ctx.case.id}/photos/{a.id}">'
    bar = '<p class="meta">没有比对距离</p>'
    if a.distance is not None and a.threshold:
        width, mark = bar_percent(a.distance, a.threshold)
        tone = "bad" if a.distance > a.threshold else "ok"
        bar = (f'<div class="dist" title="越短越像"><div class="fill {tone}" style="width:{width}%"></div>'
               f'<div class="thr" style="left:{mark}%"></div></div>'
               f'<p class="meta">距离 {a.distance:.3f}，阈值 {a.threshold:.3f}（越小越像，超过竖线算不像）</p>')
    who = f"代办（{escape(a.relationship or '家属')}）" if a.proxy else "本人"
    where = CHANNEL_LABELS.get(a.channel, a.channel)
    extra = "".join(f"<li>{escape(label)}：{escape(value)}</li>"
                    for label, value in detail_items(getattr(a, "details", None)))
    quality = quality_words(a.quality_codes or [])
    return (f'<div class="attempt {v.tone}"><div class="pair">{reference}{selfie}</div><div class="facts">'
            f'<p class="verdict {v.tone}">{escape(v.words)}</p>{bar}'
            f'<p class="meta">{escape(fmt_time(a.created_at, tz))} · {escape(where)} · {who}'
            f'{" · 质量问题：" + escape(quality) if quality else ""}</p>'
            f'{"<ul>" + extra + "</ul>" if extra else ""}</div></div>')


def render_evidence(ctx: CaseContext, tz: Any) -> str:
    """The review panel: every attempt with the enrolled photo beside its selfie."""
    now = datetime.now(timezone.utc)
    if ctx.reference_available:
        reference = (f'<img class="photo reference" alt="登记照片" '
                     f'src="/staff/cases/{ctx.case.id}/reference-photo">')
    elif ctx.template is not None:
        reference = '<p class="meta">登记照片已过保存期限</p>'
    else:
        reference = '<p class="meta">没有登记照片（未建模）</p>'
    parts = []
    if ctx.concerns:
        parts.append('<div class="concerns"><strong>审核通过需要主管复核：</strong><ul>'
                     + "".join(f"<li>{escape(c)}</li>" for c in ctx.concerns) + "</ul></div>")
    if ctx.attempts:
        parts.append('<p class="meta">左：登记照片　右：这次的自拍</p>')
        parts.extend(_attempt_row(ctx, a, tz, reference, now) for a in ctx.attempts)
    else:
        parts.append(f'<div class="pair">{reference}</div><p class="meta">这个案件没有刷脸记录。</p>')
    if ctx.history:
        rows = "".join(f"<tr><td>{escape(fmt_time(a.created_at, tz))}</td>"
                       f"<td>{escape(CHANNEL_LABELS.get(a.channel, a.channel))}</td>"
                       f"<td>{escape(verdict(a).words)}</td></tr>" for a in ctx.history[:20])
        parts.append("<h3>这位退休人员更早的刷脸记录</h3><table><tr><th>时间</th><th>渠道</th><th>结果</th></tr>"
                     + rows + "</table>")
    return "".join(parts)


def render_related(ctx: CaseContext, tz: Any) -> str:
    """Other open or recent cases of the same pensioner, linked."""
    if not ctx.related:
        return ""
    rows = "".join(
        f'<li><a href="/staff/cases/{c.id}">#{c.id}</a> {escape(REASON_LABELS.get(c.reason, c.reason))} · '
        f'{escape(STATUS_LABELS.get(c.status, c.status))}'
        f'{" · " + escape(DECISION_LABELS.get(c.decision or "", c.decision or "")) if c.decision else ""}'
        f' · {escape(fmt_time(c.created_at, tz))}</li>' for c in ctx.related)
    return ('<div class="related"><strong>同一位退休人员的其他案件（做决定前请先看，避免结论矛盾）：</strong>'
            f"<ul>{rows}</ul></div>")


def render_proxy(ctx: CaseContext, tz: Any) -> str:
    parts = []
    if ctx.case.proxy:
        parts.append("<table>" + "".join(
            f"<tr><th>{escape(str(k))}</th><td>{escape(mask(json.dumps(v, ensure_ascii=False)))}</td></tr>"
            for k, v in ctx.case.proxy.items()) + "</table>")
    for link in ctx.proxies:
        parts.append(f"<p>代办关系：{escape(link.relationship)}，退休人员编号 {link.pensioner_id}，"
                     f"{link.year}年，同意时间 {escape(fmt_time(link.consent_at, tz))}</p>")
    return "".join(parts) or '<p class="meta">不是代办。</p>'


def _case_actions(staff: StaffSession, ctx: CaseContext) -> str:
    case = ctx.case
    base = f"/staff/cases/{case.id}"
    buttons = []
    if case.status == "waiting":
        buttons.append(post_button(staff, f"{base}/claim", "认领", button_id="claim"))
    mine = case.assigned_to == staff.staff_id or staff.is_supervisor
    if (case.status == "claimed" and mine) or (case.status == "waiting" and staff.is_supervisor):
        buttons.append(post_button(staff, f"{base}/handback", "交还小助手", button_id="handback"))
    if staff.is_supervisor and case.status in ("waiting", "claimed"):
        options = "".join(f'<option value="{escape(name)}">{escape(name)}</option>'
                          for name in ctx.active_staff)
        buttons.append(post_button(staff, f"{base}/assign", "分配给",
                                   f'<select name="username">{options}</select> '))
    return "<p>" + " ".join(buttons) + "</p>" if buttons else ""


def _reply_box(staff: StaffSession, ctx: CaseContext) -> str:
    case = ctx.case
    base = f"/staff/cases/{case.id}"
    parts = []
    can_act = case.assigned_to == staff.staff_id or staff.is_supervisor
    if case.status == "claimed" and can_act:
        quick = "".join(f'<button type="button" class="quick-reply">{escape(q)}</button>' for q in QUICK_REPLIES)
        parts.append(
            f'<h3>回复用户</h3><form method="post" action="{base}/reply">{hidden_csrf(staff)}'
            '<textarea name="text" id="reply-text" rows="3" maxlength="2000" required></textarea>'
            f'<div class="quick">常用语：{quick}</div><button type="submit" id="send-reply">发送</button></form>')
    if case.status in ("claimed", "closed", "cancelled") or staff.is_supervisor:
        parts.append(
            f'<h3>内部备注（用户看不到）</h3><form method="post" action="{base}/note">{hidden_csrf(staff)}'
            '<textarea name="text" rows="2" maxlength="2000" required></textarea>'
            '<button type="submit">保存备注</button></form>')
    return "".join(parts)


def _decision_box(staff: StaffSession, ctx: CaseContext) -> str:
    case = ctx.case
    if case.status == "signoff":
        if not staff.is_supervisor:
            return ('<section id="decision"><h2>处理结果</h2><p class="warn">已申请审核通过，'
                    '正在等待主管复核。</p></section>')
        if ctx.requested_by == staff.actor:
            return ('<section id="decision"><h2>处理结果</h2><p class="warn">这是您提出的审核通过申请，'
                    '需要另一位主管复核。</p></section>')
        return (f'<section id="decision"><h2>主管复核：申请审核通过</h2>'
                f'<p>申请人：{escape((ctx.requested_by or "").removeprefix("staff:"))}；理由：{escape(case.note or "")}</p>'
                f'<form method="post" action="/staff/cases/{case.id}/signoff">{hidden_csrf(staff)}'
                '<label><input type="radio" name="approve" value="yes"> 同意，审核通过（记为人工认证）</label><br>'
                '<label><input type="radio" name="approve" value="no" checked> 不同意，退回处理人</label><br>'
                '<label>复核意见（必填）<textarea name="note" rows="2" maxlength="2000" required></textarea></label>'
                '<button type="submit" id="signoff">提交复核</button></form></section>')
    if case.status != "claimed" or not (case.assigned_to == staff.staff_id or staff.is_supervisor):
        return ""
    approved = ('<label><input type="radio" name="decision" value="approved"> 审核通过（记为人工认证）</label><br>'
                if case.pensioner_id else '<p class="meta">没有关联退休人员，不能审核通过。</p>')
    if case.pensioner_id and ctx.concerns:
        approved += '<p class="warn">证据不支持通过：提交“审核通过”后要等主管复核才生效。</p>'
    others = ""
    if ctx.related:
        others = ('<label class="warn"><input type="checkbox" name="ack_others" value="yes" id="ack-others"> '
                  '我已看过同一位退休人员的其他案件，确认这个结论不矛盾</label><br>')
    return (f'<section id="decision"><h2>处理结果</h2>{render_related(ctx, None)}'
            f'<form method="post" action="/staff/cases/{case.id}/resolve">'
            f"{hidden_csrf(staff)}{approved}"
            '<label><input type="radio" name="decision" value="rejected"> 不通过（原因会发给用户）</label><br>'
            '<label><input type="radio" name="decision" value="resolved" checked> 已解决（没有认证结论）</label><br>'
            '<label>理由 / 不通过的原因（审核通过和不通过都必须写；请用大白话）'
            '<textarea name="note" rows="2" maxlength="2000"></textarea></label>'
            '<label><input type="checkbox" name="confirm" value="yes" id="confirm"> '
            '我已核对登记照片和自拍，确认这个结论（审核通过时必须勾选）</label><br>'
            f'{others}<button type="submit" id="resolve">结束案件</button></form></section>')


@html_page
async def case_page(request: web.Request, staff: StaffSession) -> web.Response:
    desk = request.app[DESK]
    tz = request.app[keys.SERVICES].handoff.tz
    ctx = await desk.context(staff, case_id_of(request))
    case = ctx.case
    await request.app[keys.SERVICES].db.audit(staff.actor, "view_case", target=f"case:{case.id}")
    flash = request.query.get("msg", "")
    body = _template("case.html").substitute(
        flash=f'<p class="ok">{escape(flash[:100])}</p>' if flash else "",
        case_id=case.id, head=render_head(staff, ctx, tz), state_key=escape(state_key(case)),
        transcript=render_transcript(case.transcript or [], tz),
        messages=render_messages(case.id, ctx.messages, ctx.staff_names, tz), reply_box=_reply_box(staff, ctx),
        pensioner=render_pensioner(ctx, tz), evidence=render_evidence(ctx, tz),
        proxy=render_proxy(ctx, tz), decision_box=_decision_box(staff, ctx),
        failures=render_failures(await desk.send_failures(staff, case.id), tz, "这个案件没有发送失败的消息。",
                                 resend=staff))
    after = await _last_event_id(request)
    script = (f"<script>pollFragments([['messages','/staff/cases/{case.id}/fragments/messages'],"
              f"['failures','/staff/cases/{case.id}/fragments/failures'],"
              f"['case-head','/staff/cases/{case.id}/fragments/head']], "
              f"{json.dumps(after)});</script>")
    return page(request, f"案件 #{case.id}", body, staff, script=script)


def state_key(case: Case) -> str:
    """What the page's actions depend on; when it changes, the page is stale."""
    return f"{case.status}:{case.assigned_to or 0}"


def render_head(staff: StaffSession, ctx: CaseContext, tz: Any) -> str:
    """The case's status line and actions (re-rendered live when someone else changes the case)."""
    case = ctx.case
    decision = f"· 结果：{escape(DECISION_LABELS.get(case.decision or '', case.decision or ''))}" if case.decision else ""
    if case.note:
        decision += f"（{escape(case.note)}）"
    return (f'<h2>案件 #{case.id} · {escape(REASON_LABELS.get(case.reason, case.reason))}</h2>'
            f'<p>状态：<span class="status-{escape(case.status)}" id="case-status" data-state="{escape(state_key(case))}">'
            f'{escape(STATUS_LABELS.get(case.status, case.status))}</span> · '
            f'渠道：{escape(CHANNEL_LABELS.get(case.channel, case.channel))} · 用户：{escape(case.user_id)} · '
            f'处理人：{escape(ctx.assignee or "—")}</p>'
            f'<p class="meta">创建 {escape(fmt_time(case.created_at, tz))} · 认领 {escape(fmt_time(case.claimed_at, tz))}'
            f' · 结束 {escape(fmt_time(case.closed_at, tz))} {decision}</p>{_case_actions(staff, ctx)}')


@html_page
async def head_fragment(request: web.Request, staff: StaffSession) -> web.Response:
    ctx = await request.app[DESK].context(staff, case_id_of(request))
    return fragment(render_head(staff, ctx, request.app[keys.SERVICES].handoff.tz))


@html_page
async def messages_fragment(request: web.Request, staff: StaffSession) -> web.Response:
    desk = request.app[DESK]
    case = await desk.visible_case(staff, case_id_of(request))
    names = {u.id: u.username for u in await request.app[AUTH].users()}
    return fragment(render_messages(case.id, await desk.messages(case.id), names,
                                    request.app[keys.SERVICES].handoff.tz))


@html_page
async def case_failures_fragment(request: web.Request, staff: StaffSession) -> web.Response:
    failures = await request.app[DESK].send_failures(staff, case_id_of(request))
    return fragment(render_failures(failures, request.app[keys.SERVICES].handoff.tz, "这个案件没有发送失败的消息。",
                                    resend=staff))


@html_page
async def case_action(request: web.Request, staff: StaffSession) -> web.StreamResponse:
    """The case page's forms: claim, reply, note, resolve, handback, assign."""
    desk = request.app[DESK]
    case_id = case_id_of(request)
    form = await request.post()
    action = request.match_info["action"]
    flash = {"claim": "已认领", "reply": "已发送", "note": "备注已保存", "resolve": "案件已结束",
             "handback": "已交还小助手", "assign": "已分配", "signoff": "复核已提交",
             "resend": "已重发"}[action]
    if action == "claim":
        await desk.claim(staff, case_id)
    elif action == "reply":
        try:
            await desk.reply(staff, case_id, form.get("text"))
        except DeliveryFailed:
            flash = "消息已保存，但没能送到用户那里，见下方“发送失败”"
    elif action == "note":
        await desk.note(staff, case_id, form.get("text"))
    elif action == "resolve":
        if form.get("decision") == "approved" and form.get("confirm") != "yes":
            raise BadRequest("approval not confirmed", code="confirm_required",
                             user_message="审核通过前请核对照片，并勾选“确认这个结论”。")
        closed = await desk.resolve(staff, case_id, form.get("decision"), form.get("note"),
                                    acknowledge_other_cases=form.get("ack_others") == "yes")
        if closed.status == "signoff":
            flash = "已申请审核通过，等待主管复核后生效"
    elif action == "resend":
        delivered = await desk.resend(staff, case_id, form.get("failure"))
        flash = "已重发" if delivered else "重发也没有送到，请稍后再试或打电话联系用户"
    elif action == "signoff":
        answer = form.get("approve")
        await desk.signoff(staff, case_id, answer == "yes" if answer in ("yes", "no") else None,
                           form.get("note"))
        flash = "复核已提交"
    elif action == "handback":
        await desk.hand_back(staff, case_id)
    else:
        await desk.assign(staff, case_id, form.get("username"))
    return see_other(f"/staff/cases/{case_id}?msg={flash}")


@html_page
async def pull_form(request: web.Request, staff: StaffSession) -> web.StreamResponse:
    form = await request.post()
    case = await request.app[DESK].pull(staff, form.get("conversation_key"))
    return see_other(f"/staff/cases/{case.id}?msg=已接入")


@html_page
async def case_file(request: web.Request, staff: StaffSession) -> web.Response:
    data, content_type = await request.app[DESK].case_file(staff, case_id_of(request), request.match_info["name"])
    return web.Response(body=data, content_type=content_type,
                        headers={"Cache-Control": "no-store, private", "X-Content-Type-Options": "nosniff"})


@html_page
async def photo(request: web.Request, staff: StaffSession) -> web.Response:
    data, content_type = await request.app[DESK].photo(staff, case_id_of(request),
                                                       int(request.match_info["attempt_id"]))
    return web.Response(body=data, content_type=content_type,
                        headers={"Cache-Control": "no-store, private", "X-Content-Type-Options": "nosniff"})


# ---------------------------------------------------------------- staff management


def _require_supervisor(staff: StaffSession) -> None:
    if not staff.is_supervisor:
        raise Forbidden("supervisors only", user_message="只有主管可以管理工作人员。")


@html_page
async def users_page(request: web.Request, staff: StaffSession) -> web.Response:
    _require_supervisor(staff)
    rows = []
    now = datetime.now(timezone.utc)
    for user in await request.app[AUTH].users():
        locked = aware(user.locked_until)
        state = "在用" if user.active else "已停用"
        if locked and locked > now:
            state += "，已锁定"
        toggle = post_button(staff, f"/staff/users/{user.id}/{'deactivate' if user.active else 'activate'}",
                             "停用" if user.active else "启用")
        unlock = post_button(staff, f"/staff/users/{user.id}/unlock", "解锁")
        rows.append(f"<tr><td>{escape(user.username)}</td><td>{'主管' if user.role == 'supervisor' else '办事员'}</td>"
                    f"<td>{escape(state)}</td><td>{user.failed_logins}</td><td>{toggle} {unlock}</td></tr>")
    table = ("<table><tr><th>用户名</th><th>角色</th><th>状态</th><th>连续失败</th><th></th></tr>"
             + "".join(rows) + "</table>")
    flash = request.query.get("msg", "")
    body = _template("users.html").substitute(
        flash=f'<p class="ok">{escape(flash[:100])}</p>' if flash else "", users=table, csrf=escape(staff.csrf))
    return page(request, "工作人员", body, staff)


@html_page
async def users_add(request: web.Request, staff: StaffSession) -> web.StreamResponse:
    _require_supervisor(staff)
    form = await request.post()
    username, password, role = form.get("username"), form.get("password"), form.get("role") or "agent"
    if not all(isinstance(v, str) for v in (username, password, role)):
        raise BadRequest("bad form", code="invalid_form", user_message="请填写完整。")
    user = await request.app[AUTH].create_user(str(username).strip(), str(password), str(role))
    await request.app[keys.SERVICES].db.audit(staff.actor, "staff_add", target=f"staff:{user.username}",
                                              role=user.role)
    return see_other("/staff/users?msg=已新增")


@html_page
async def users_change(request: web.Request, staff: StaffSession) -> web.StreamResponse:
    _require_supervisor(staff)
    auth = request.app[AUTH]
    user_id = int(request.match_info["user_id"])
    action = request.match_info["action"]
    if action == "unlock":
        users = {u.id: u for u in await auth.users()}
        if user_id not in users:
            raise BadRequest("no such user", code="unknown_user", status=404, user_message="没有这个用户。")
        await auth.unlock(users[user_id].username)
        target = users[user_id].username
    else:
        if user_id == staff.staff_id:
            raise BadRequest("cannot deactivate yourself", code="self", user_message="不能停用自己。")
        target = (await auth.set_active(user_id, action == "activate")).username
    await request.app[keys.SERVICES].db.audit(staff.actor, f"staff_{action}", target=f"staff:{target}")
    return see_other("/staff/users?msg=已更新")


AUDIT_LABELS = {"case_approved": "审核通过", "case_rejected": "不通过", "case_resolved": "已解决",
                "approval_requested": "申请审核通过（待复核）", "approval_declined": "复核不同意",
                "hand_back": "交还小助手", "assign_case": "分配", "claim_case": "认领", "pull_chat": "接入对话"}


def _audit_query(request: web.Request) -> tuple[str | None, int]:
    who = request.query.get("staff") or None
    raw_page = request.query.get("page", "1")
    if (who is not None and len(who) > 64) or not raw_page.isdigit():
        raise BadRequest("bad filter", code="invalid_query", user_message="参数不对。")
    return who, max(1, int(raw_page))


@html_page
async def audit_page(request: web.Request, staff: StaffSession) -> web.Response:
    """Supervisors: every decision from the audit log, filtered per staff member, 50 a page."""
    who, page_no = _audit_query(request)
    rows, total = await request.app[DESK].audit_entries(staff, actor=who, offset=(page_no - 1) * 50)
    tz = request.app[keys.SERVICES].handoff.tz
    names = sorted(u.username for u in await request.app[AUTH].users())
    options = '<option value="">全部工作人员</option>' + "".join(
        f'<option value="{escape(n)}"{" selected" if n == who else ""}>{escape(n)}</option>' for n in names)
    lines = []
    for row in rows:
        details = row.details or {}
        case = (row.target or "").removeprefix("case:")
        link = f'<a href="/staff/cases/{escape(case)}">#{escape(case)}</a>' if case.isdigit() else "—"
        lines.append(f"<tr><td>{escape(fmt_time(row.at, tz))}</td><td>{escape(row.actor.removeprefix('staff:'))}</td>"
                     f"<td>{escape(AUDIT_LABELS.get(row.action, row.action))}</td><td>{link}</td>"
                     f"<td>{escape(str(details.get('note') or details.get('to') or '')[:200])}</td></tr>")
    table = ("<table><tr><th>时间</th><th>工作人员</th><th>操作</th><th>案件</th><th>理由/说明</th></tr>"
             + "".join(lines) + "</table>") if lines else '<p class="meta">没有记录。</p>'
    pages = ""
    query = f"&staff={quote(who)}" if who else ""
    if page_no > 1:
        pages += f'<a href="/staff/audit?page={page_no - 1}{escape(query)}">上一页</a> '
    if page_no * 50 < total:
        pages += f'<a href="/staff/audit?page={page_no + 1}{escape(query)}">下一页</a>'
    body = (f'<section><h2>审计记录：决定和分配（共 {total} 条）</h2><form method="get" action="/staff/audit">'
            f'<label>工作人员 <select name="staff">{options}</select></label> <button type="submit">筛选</button>'
            f"</form>{table}<p>{pages}</p></section>")
    return page(request, "审计记录", body, staff)


@api
async def api_audit(request: web.Request, staff: StaffSession) -> web.Response:
    who, page_no = _audit_query(request)
    rows, total = await request.app[DESK].audit_entries(staff, actor=who, offset=(page_no - 1) * 50)
    return web.json_response({"total": total, "entries": [
        {"id": r.id, "at": _iso(r.at), "actor": r.actor, "action": r.action, "target": r.target,
         "details": r.details or {}} for r in rows]}, dumps=dumps)


# ---------------------------------------------------------------- JSON API


@api
async def api_me(request: web.Request, staff: StaffSession) -> web.Response:
    return web.json_response({"username": staff.username, "role": staff.role, "csrf_token": staff.csrf})


@api
async def api_cases(request: web.Request, staff: StaffSession) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in STATUS_LABELS:
        raise BadRequest("unknown status", code="invalid_status", user_message="状态不对。")
    cases = await request.app[DESK].list_cases(staff, status)
    return web.json_response([case_json(c) for c in cases], dumps=dumps)


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
    return web.json_response(body, dumps=dumps)


@api
async def api_messages(request: web.Request, staff: StaffSession) -> web.Response:
    desk = request.app[DESK]
    case = await desk.visible_case(staff, case_id_of(request))
    try:
        after = int(request.query.get("after", "0"))
    except ValueError as exc:
        raise BadRequest("after must be a number", code="invalid_after") from exc
    return web.json_response([message_json(m) for m in await desk.messages(case.id, after)], dumps=dumps)


@api
async def api_claim(request: web.Request, staff: StaffSession) -> web.Response:
    case = await request.app[DESK].claim(staff, case_id_of(request))
    return web.json_response(case_json(case), dumps=dumps)


@api
async def api_send(request: web.Request, staff: StaffSession) -> web.Response:
    body = await json_body(request)
    message = await request.app[DESK].reply(staff, case_id_of(request), body.get("text"))
    return web.json_response(message_json(message), status=201, dumps=dumps)


@api
async def api_note(request: web.Request, staff: StaffSession) -> web.Response:
    body = await json_body(request)
    message = await request.app[DESK].note(staff, case_id_of(request), body.get("text"))
    return web.json_response(message_json(message), status=201, dumps=dumps)


@api
async def api_resolve(request: web.Request, staff: StaffSession) -> web.Response:
    body = await json_body(request)
    if body.get("decision") not in DECISIONS:
        raise BadRequest(f"decision must be one of {DECISIONS}", code="invalid_decision",
                         user_message="处理结果不对。")
    case = await request.app[DESK].resolve(staff, case_id_of(request), body.get("decision"), body.get("note"),
                                           acknowledge_other_cases=body.get("acknowledge_other_cases") is True)
    return web.json_response(case_json(case), status=202 if case.status == "signoff" else 200, dumps=dumps)


@api
async def api_signoff(request: web.Request, staff: StaffSession) -> web.Response:
    """Supervisor: ``{"approve": true|false, "note"}`` on an approval waiting in ``signoff``."""
    body = await json_body(request)
    case = await request.app[DESK].signoff(staff, case_id_of(request), body.get("approve"), body.get("note"))
    return web.json_response(case_json(case), dumps=dumps)


@html_page
async def reference_photo(request: web.Request, staff: StaffSession) -> web.Response:
    data, content_type = await request.app[DESK].reference_photo(staff, case_id_of(request))
    return web.Response(body=data, content_type=content_type,
                        headers={"Cache-Control": "no-store, private", "X-Content-Type-Options": "nosniff"})


@api
async def api_handback(request: web.Request, staff: StaffSession) -> web.Response:
    case = await request.app[DESK].hand_back(staff, case_id_of(request))
    return web.json_response(case_json(case), dumps=dumps)


@api
async def api_assign(request: web.Request, staff: StaffSession) -> web.Response:
    body = await json_body(request)
    case = await request.app[DESK].assign(staff, case_id_of(request), body.get("username"))
    return web.json_response(case_json(case), dumps=dumps)


@api
async def api_pull(request: web.Request, staff: StaffSession) -> web.Response:
    body = await json_body(request)
    case = await request.app[DESK].pull(staff, body.get("conversation_key"))
    return web.json_response(case_json(case), status=201, dumps=dumps)


@api
async def api_recent(request: web.Request, staff: StaffSession) -> web.Response:
    services = request.app[keys.SERVICES]
    out = []
    for key, at in await services.handoff.recent(50):
        conv = await services.handoff.conversations.load(key)
        if not conv.is_new:
            out.append({"conversation_key": key, "mode": conv.mode, "last_at": at, "case_id": conv.case_id})
    return web.json_response(out, dumps=dumps)


@api
async def api_send_failures(request: web.Request, staff: StaffSession) -> web.Response:
    """Messages the channels gave up delivering: all for supervisors, ``?case_id=`` for one case."""
    raw_case, raw_limit = request.query.get("case_id"), request.query.get("limit", "50")
    if (raw_case is not None and not raw_case.isdigit()) or not raw_limit.isdigit():
        raise BadRequest("case_id and limit must be numbers", code="invalid_query", user_message="参数不对。")
    failures = await request.app[DESK].send_failures(
        staff, int(raw_case) if raw_case is not None else None, limit=int(raw_limit))
    return web.json_response([f.to_json() for f in failures], dumps=dumps)


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
    return web.json_response({"events": events, "last": events[-1]["id"] if events else after}, dumps=dumps)


# ---------------------------------------------------------------- wiring


async def staff_ctx(app: web.Application) -> Any:
    """Runs after ``storage_ctx``: the desk, the auth service, and the queue rebuilt from the DB."""
    services = app[keys.SERVICES]
    app[AUTH] = StaffAuth(services.settings, services.db, services.redis)
    app[DESK] = StaffDesk(services)
    await services.handoff.sync_queue()
    yield


def setup(app: web.Application) -> None:
    """Mount the staff console and its API."""
    app.cleanup_ctx.append(staff_ctx)
    r = app.router
    r.add_get("/staff/login", login_page)
    r.add_post("/staff/login", login)
    r.add_post("/staff/logout", logout)
    r.add_get("/staff", queue_page)
    r.add_get("/staff/", queue_page)
    r.add_get("/staff/fragments/{part:queue|mine|done|recent|failures}", queue_fragment)
    r.add_get(r"/staff/cases/{case_id:\d+}", case_page)
    r.add_get(r"/staff/cases/{case_id:\d+}/fragments/messages", messages_fragment)
    r.add_get(r"/staff/cases/{case_id:\d+}/fragments/failures", case_failures_fragment)
    r.add_get(r"/staff/cases/{case_id:\d+}/fragments/head", head_fragment)
    r.add_post(r"/staff/cases/{case_id:\d+}/{action:claim|reply|note|resolve|handback|assign|signoff|resend}", case_action)
    r.add_get(r"/staff/cases/{case_id:\d+}/photos/{attempt_id:\d+}", photo)
    r.add_get(r"/staff/cases/{case_id:\d+}/files/{name:[0-9a-f]{32}\.img}", case_file)
    r.add_post("/staff/pull", pull_form)
    r.add_get("/staff/users", users_page)
    r.add_get("/staff/audit", audit_page)
    r.add_get("/api/staff/audit", api_audit)
    r.add_post("/staff/users", users_add)
    r.add_post(r"/staff/users/{user_id:\d+}/{action:activate|deactivate|unlock}", users_change)
    r.add_get("/api/staff/me", api_me)
    r.add_get("/api/staff/cases", api_cases)
    r.add_get(r"/api/staff/cases/{case_id:\d+}", api_case)
    r.add_get(r"/api/staff/cases/{case_id:\d+}/messages", api_messages)
    r.add_post(r"/api/staff/cases/{case_id:\d+}/claim", api_claim)
    r.add_post(r"/api/staff/cases/{case_id:\d+}/messages", api_send)
    r.add_post(r"/api/staff/cases/{case_id:\d+}/notes", api_note)
    r.add_post(r"/api/staff/cases/{case_id:\d+}/resolve", api_resolve)
    r.add_post(r"/api/staff/cases/{case_id:\d+}/signoff", api_signoff)
    r.add_get(r"/staff/cases/{case_id:\d+}/reference-photo", reference_photo)
    r.add_post(r"/api/staff/cases/{case_id:\d+}/handback", api_handback)
    r.add_post(r"/api/staff/cases/{case_id:\d+}/assign", api_assign)
    r.add_post("/api/staff/pull", api_pull)
    r.add_get("/api/staff/recent", api_recent)
    r.add_get("/api/staff/events", api_events)
    r.add_get("/api/staff/send-failures", api_send_failures)
    r.add_get("/api/staff/reminders", api_reminders)


@api
async def api_reminders(request: web.Request, staff: StaffSession) -> web.Response:
    """``GET /api/staff/reminders[?pensioner_id=N]``: reminder subscriptions and deliveries."""
    raw = request.query.get("pensioner_id")
    if raw is not None and not raw.isdigit():
        raise BadRequest("pensioner_id must be a number", code="invalid_query", user_message="参数不对。")
    summary = await staff_summary(request.app[keys.SERVICES].db, int(raw) if raw is not None else None)
    return web.json_response(summary, dumps=dumps)
