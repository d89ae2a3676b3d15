"""The staff console's pages and the fragments their script re-fetches.

Each handler gathers data from the desk, the auth service and Redis, and hands it to
``bot.staff.render``; ``html_page`` (``bot.staff.guards``) checks the session and CSRF.
Each handler's route is declared on it (``routes``, mounted by ``bot.staff.web.setup``).
"""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from bot import keys
from bot.core.conversation import Conversation
from bot.core.errors import BadRequest, BotError, Forbidden
from bot.core.outbox import DeliveryFailed
from bot.records.cases import EVENTS_KEY
from bot.records.reminders import staff_summary
from bot.staff import render
from bot.staff.auth import LockedOut, LoginFailed, StaffSession
from bot.staff.guards import (
    AUTH,
    CANNED,
    COOKIE,
    DESK,
    INBOX,
    audit_query,
    case_id_of,
    current_staff,
    done,
    fragment,
    html_page,
    page,
    private_file,
    reminder_query,
    require_csrf_form,
    require_supervisor,
    same_site,
    see_other,
)
from bot.staff.inbox import MAX_QUERY, CaseFilter, CasePage, parse_filter
from bot.staff.paths import CASE

routes = web.RouteTableDef()

# ---------------------------------------------------------------- login / logout


@routes.get("/staff/login")
async def login_page(request: web.Request) -> web.Response:
    if await current_staff(request) is not None:
        raise web.HTTPSeeOther("/staff")
    return page("登录", render.login_body())


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@routes.post("/staff/login")
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
            user = await request.app[AUTH].authenticate(username.strip(), password,
                                                        request.app[keys.CLIENT_ADDRESSES].of(request))
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
    return page("登录", render.login_body(error.user_message), status=error.status)


@routes.post("/staff/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    staff = await current_staff(request)
    if staff is not None:
        require_csrf_form(staff, await request.post())
        await request.app[AUTH].end_session(staff.token)
        await request.app[keys.SERVICES].db.audit(staff.actor, "logout")
    response = see_other("/staff/login")
    response.del_cookie(COOKIE, path="/")
    return response


# ---------------------------------------------------------------- queue page


async def _queue_parts(request: web.Request, staff: StaffSession) -> dict[str, str]:
    queues = await request.app[INBOX].queues(staff, request.app[keys.SERVICES].handoff.tz)
    return render.queue_parts(staff, queues, await request.app[AUTH].users())


async def _failures_html(request: web.Request, staff: StaffSession) -> str:
    """Supervisors: every message the channels gave up on (others: nothing)."""
    if not staff.is_supervisor:
        return ""
    return render.failures(await request.app[DESK].send_failures(staff, limit=30),
                           request.app[keys.SERVICES].handoff.tz)


async def _recent_html(request: web.Request, staff: StaffSession) -> str:
    handoff = request.app[keys.SERVICES].handoff
    chats: list[tuple[str, Conversation, float]] = []
    for key, at in await handoff.recent(30):
        conv = await handoff.conversations.load(key)
        if not conv.is_new:
            chats.append((key, conv, at))
    return render.recent(staff, chats, handoff.tz)


async def _last_event_id(request: web.Request) -> str:
    rows = await request.app[keys.SERVICES].redis.xrevrange(EVENTS_KEY, count=1)
    return rows[0][0].decode() if rows else "0-0"


@routes.get("/staff/")
@routes.get("/staff")
@html_page
async def queue_page(request: web.Request, staff: StaffSession) -> web.Response:
    parts = await _queue_parts(request, staff)
    failures = await _failures_html(request, staff)
    parts["recent"] = await _recent_html(request, staff)
    body = render.queue_body(staff, parts, failures, request.query.get("msg", ""))
    script = render.poll_script([("reviews", "/staff/fragments/reviews"), ("queue", "/staff/fragments/queue"),
                                 ("mine", "/staff/fragments/mine"),
                                 ("recent", "/staff/fragments/recent"), ("done", "/staff/fragments/done"),
                                 ("failures", "/staff/fragments/failures")], await _last_event_id(request))
    return page("队列", body, staff, script=script)


@routes.get("/staff/fragments/{part:reviews|queue|mine|done|recent|failures}")
@html_page
async def queue_fragment(request: web.Request, staff: StaffSession) -> web.Response:
    part = request.match_info["part"]
    if part == "recent":
        return fragment(await _recent_html(request, staff))
    if part == "failures":
        if not staff.is_supervisor:
            raise Forbidden("supervisors only", user_message="只有主管可以查看全部发送失败记录。")
        return fragment(await _failures_html(request, staff))
    return fragment((await _queue_parts(request, staff))[part])


@routes.get("/staff/search")
@html_page
async def search_page(request: web.Request, staff: StaffSession) -> web.Response:
    """Search and filters over the cases this staff member may see, 20 a page (also the archive)."""
    users = await request.app[AUTH].users()
    try:
        f = parse_filter(request.query)
    except BadRequest as exc:  # the form again, with what was typed and the reason beside it
        typed = CaseFilter(q=(request.query.get("q") or "")[:MAX_QUERY])
        body = render.search_body(typed, CasePage([], 0), users, render.CHANNEL_LABELS, error=exc.user_message)
        return page("查找案件", body, staff, status=exc.status)
    inbox = request.app[INBOX]
    result = await inbox.search(staff, f, request.app[keys.SERVICES].handoff.tz)
    if f.searching:
        await inbox.audit_search(staff, f, result.total)
    channels = sorted(set(render.CHANNEL_LABELS) | {c.channel for c in result.cases})
    return page("查找案件", render.search_body(f, result, users, channels), staff)


# ---------------------------------------------------------------- case page


@routes.get(CASE)
@html_page
async def case_page(request: web.Request, staff: StaffSession) -> web.Response:
    desk = request.app[DESK]
    tz = request.app[keys.SERVICES].handoff.tz
    ctx = await desk.context(staff, case_id_of(request))
    case = ctx.case
    await request.app[keys.SERVICES].db.audit(staff.actor, "view_case", target=f"case:{case.id}")
    await request.app[INBOX].mark_seen(staff, case, max((m.id for m in ctx.messages), default=0))
    reminders = None
    if ctx.pensioner is not None:
        reminders = await staff_summary(request.app[keys.SERVICES].db, ctx.pensioner.id, limit=20)
    body = render.case_body(staff, ctx, await desk.send_failures(staff, case.id), tz,
                            request.query.get("msg", ""), await request.app[CANNED].all(), reminders)
    base = f"/staff/cases/{case.id}/fragments"
    script = render.poll_script([("messages", f"{base}/messages"), ("failures", f"{base}/failures"),
                                 ("case-head", f"{base}/head")], await _last_event_id(request))
    return page(f"案件 #{case.id}", body, staff, script=script)


@routes.get(f"{CASE}/fragments/messages")
@html_page
async def messages_fragment(request: web.Request, staff: StaffSession) -> web.Response:
    desk = request.app[DESK]
    case = await desk.visible_case(staff, case_id_of(request))
    names = {u.id: u.username for u in await request.app[AUTH].users()}
    items = await desk.messages(case.id)
    await request.app[INBOX].mark_seen(staff, case, max((m.id for m in items), default=0))
    return fragment(render.messages(case.id, items, names, request.app[keys.SERVICES].handoff.tz))


@routes.get(f"{CASE}/fragments/failures")
@html_page
async def case_failures_fragment(request: web.Request, staff: StaffSession) -> web.Response:
    failures = await request.app[DESK].send_failures(staff, case_id_of(request))
    return fragment(render.failures(failures, request.app[keys.SERVICES].handoff.tz, render.NO_CASE_FAILURES,
                                    resend=staff))


@routes.get(f"{CASE}/fragments/head")
@html_page
async def head_fragment(request: web.Request, staff: StaffSession) -> web.Response:
    ctx = await request.app[DESK].context(staff, case_id_of(request))
    return fragment(render.head(staff, ctx, request.app[keys.SERVICES].handoff.tz))


@routes.post(CASE + "/{action:claim|reply|note|resolve|handback|assign|signoff|resend}")
@html_page
async def case_action(request: web.Request, staff: StaffSession) -> web.StreamResponse:
    """The case page's forms: claim, reply, note, resolve, handback, assign, signoff, resend."""
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
    elif action == "handback":
        await desk.hand_back(staff, case_id)
    else:
        await desk.assign(staff, case_id, form.get("username"))
    return done(request, f"/staff/cases/{case_id}", flash)


@routes.post("/staff/pull")
@html_page
async def pull_form(request: web.Request, staff: StaffSession) -> web.StreamResponse:
    form = await request.post()
    case = await request.app[DESK].pull(staff, form.get("conversation_key"))
    return see_other(f"/staff/cases/{case.id}?msg=已接入")


@routes.get(CASE + r"/photos/{attempt_id:\d+}")
@html_page
async def photo(request: web.Request, staff: StaffSession) -> web.Response:
    return private_file(*await request.app[DESK].photo(staff, case_id_of(request),
                                                       int(request.match_info["attempt_id"])))


@routes.get(CASE + r"/files/{name:[0-9a-f]{32}\.img}")
@html_page
async def case_file(request: web.Request, staff: StaffSession) -> web.Response:
    return private_file(*await request.app[DESK].case_file(staff, case_id_of(request), request.match_info["name"]))


@routes.get(f"{CASE}/reference-photo")
@html_page
async def reference_photo(request: web.Request, staff: StaffSession) -> web.Response:
    return private_file(*await request.app[DESK].reference_photo(staff, case_id_of(request)))


# ---------------------------------------------------------------- staff management


@routes.get("/staff/users")
@html_page
async def users_page(request: web.Request, staff: StaffSession) -> web.Response:
    require_supervisor(staff)
    body = render.users_body(staff, await request.app[AUTH].users(), request.query.get("msg", ""),
                             datetime.now(timezone.utc))
    return page("工作人员", body, staff)


@routes.post("/staff/users")
@html_page
async def users_add(request: web.Request, staff: StaffSession) -> web.StreamResponse:
    require_supervisor(staff)
    form = await request.post()
    username, password, role = form.get("username"), form.get("password"), form.get("role") or "agent"
    if not all(isinstance(v, str) for v in (username, password, role)):
        raise BadRequest("bad form", code="invalid_form", user_message="请填写完整。")
    languages = form.get("languages") or "zh"
    user = await request.app[AUTH].create_user(str(username).strip(), str(password), str(role), str(languages))
    await request.app[keys.SERVICES].db.audit(staff.actor, "staff_add", target=f"staff:{user.username}",
                                              role=user.role)
    return see_other("/staff/users?msg=已新增")


@routes.post(r"/staff/users/{user_id:\d+}/{action:activate|deactivate|unlock}")
@html_page
async def users_change(request: web.Request, staff: StaffSession) -> web.StreamResponse:
    require_supervisor(staff)
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


@routes.get("/staff/audit")
@html_page
async def audit_page(request: web.Request, staff: StaffSession) -> web.Response:
    """Supervisors: every decision from the audit log, filtered per staff member, 50 a page."""
    who, page_no = audit_query(request)
    rows, total = await request.app[DESK].audit_entries(
        staff, actor=who, offset=(page_no - 1) * render.AUDIT_PAGE_SIZE)
    names = sorted(u.username for u in await request.app[AUTH].users())
    body = render.audit_body(rows, total, who, page_no, names, request.app[keys.SERVICES].handoff.tz)
    return page("审计记录", body, staff)


@routes.get("/staff/canned")
@html_page
async def canned_page(request: web.Request, staff: StaffSession) -> web.Response:
    """Supervisors: the canned responses (常用语), to add, edit and delete."""
    require_supervisor(staff)
    body = render.canned_body(staff, await request.app[CANNED].all(), request.query.get("msg", ""))
    return page("常用语", body, staff)


@routes.post("/staff/canned")
@html_page
async def canned_add(request: web.Request, staff: StaffSession) -> web.StreamResponse:
    form = await request.post()
    await request.app[CANNED].add(staff, form.get("shortcut"), form.get("text"))
    return done(request, "/staff/canned", "已新增")


@routes.post(r"/staff/canned/{canned_id:\d+}/{action:update|delete}")
@html_page
async def canned_change(request: web.Request, staff: StaffSession) -> web.StreamResponse:
    canned = request.app[CANNED]
    canned_id = int(request.match_info["canned_id"])
    if request.match_info["action"] == "delete":
        await canned.delete(staff, canned_id)
        return done(request, "/staff/canned", "已删除")
    form = await request.post()
    await canned.update(staff, canned_id, form.get("shortcut"), form.get("text"))
    return done(request, "/staff/canned", "已保存")


@routes.get("/staff/reminders")
@html_page
async def reminders_page(request: web.Request, staff: StaffSession) -> web.Response:
    """Supervisors: reminder deliveries (``?status=send_failed`` for the failed ones) and subscriptions."""
    require_supervisor(staff)
    status, page_no = reminder_query(request)
    summary = await staff_summary(request.app[keys.SERVICES].db, None, limit=render.REMINDER_PAGE_SIZE,
                                  status=status, offset=(page_no - 1) * render.REMINDER_PAGE_SIZE)
    ids = {row["pensioner_id"] for row in summary["deliveries"] + summary["subscriptions"]}
    names = await request.app[INBOX].pensioner_names(ids)
    body = render.reminders_body(summary, status, page_no, names, request.app[keys.SERVICES].handoff.tz)
    return page("认证提醒", body, staff)
