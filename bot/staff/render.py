"""The staff console's HTML: pure functions from data to escaped HTML strings.

No request objects and no I/O here: the handlers in ``bot.staff.pages`` gather the data,
these functions turn it into HTML, and the page skeletons live in ``templates/`` as
``string.Template`` files. Every piece of user or staff text is passed through ``escape``
before it reaches a template; template values are inserted as they are.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone
from html import escape
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

from bot.core.conversation import Conversation
from bot.core.i18n import LANGUAGE_NAMES, ZH
from bot.core.logs import mask, mask_id_number
from bot.core.storage.models import (
    AuditLog,
    CannedResponse,
    Case,
    CaseMessage,
    CertificationAttempt,
    StaffUser,
)
from bot.records.cases import REASON_LABELS
from bot.staff.auth import StaffSession
from bot.staff.desk import CaseContext, SendFailure, aware, photo_available
from bot.staff.inbox import CASE_STATUSES, KINDS, CaseFilter, CasePage, Queues
from bot.staff.review import bar_percent, detail_items, pensioner_state, quality_words, verdict

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATUS_LABELS = {"waiting": "排队中", "claimed": "处理中", "signoff": "待主管复核", "closed": "已结束",
                 "cancelled": "用户已取消"}
DECISION_LABELS = {"approved": "审核通过", "rejected": "不通过", "resolved": "已解决（无认证结论）",
                   "handed_back": "交还小助手"}
CHANNEL_LABELS = {"web": "网页", "wechat": "微信", "telegram": "Telegram", "cli": "终端"}
AUTHOR_LABELS = {"user": "用户", "staff": "工作人员", "bot": "小助手", "note": "内部备注",
                 "feedback": "用户反馈"}
MODE_LABELS = {"bot": "小助手", "waiting": "排队中", "human": "人工处理中", "closed": "刚结束"}
AUDIT_LABELS = {"case_approved": "审核通过", "case_rejected": "不通过", "case_resolved": "已解决",
                "approval_requested": "申请审核通过（待复核）", "approval_declined": "复核不同意",
                "hand_back": "交还小助手", "assign_case": "分配", "claim_case": "认领", "pull_chat": "接入对话"}
AUDIT_PAGE_SIZE = 50
PHOTO_MARK = re.compile(r"\[照片 ([0-9a-f]{32}\.img)\]")
NO_CASE_FAILURES = "这个案件没有发送失败的消息。"


@functools.cache
def template(name: str) -> Template:
    """A template file of ``templates/`` (its final newline dropped)."""
    return Template((TEMPLATES / name).read_text(encoding="utf-8").removesuffix("\n"))


# ---------------------------------------------------------------- small parts


def fmt_time(value: datetime | float | None, tz: Any = None) -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    value = aware(value)
    assert value is not None
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if tz else value.strftime("%Y-%m-%d %H:%M")


def waited(created: datetime, now: float | None = None) -> str:
    """How long a case has been waiting, in words (``now``: a Unix time, default the clock)."""
    now = time.time() if now is None else now
    seconds = max(0, int(now - (aware(created) or created).timestamp()))
    if seconds < 60:
        return "不到1分钟"
    if seconds < 3600:
        return f"{seconds // 60}分钟"
    return f"{seconds // 3600}小时{seconds % 3600 // 60}分钟"


def label(labels: dict[str, str], key: str) -> str:
    """The escaped Chinese label of ``key`` (the key itself when unknown)."""
    return escape(labels.get(key, key))


def flash(message: str) -> str:
    """The green line a page shows after an action (``?msg=``), or nothing."""
    return f'<p class="ok">{escape(message[:100])}</p>' if message else ""


def hidden_csrf(staff: StaffSession) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(staff.csrf)}">'


def post_button(staff: StaffSession, action: str, label: str, extra: str = "",
                button_id: str = "") -> str:
    ident = f' id="{button_id}"' if button_id else ""
    return (f'<form method="post" action="{escape(action)}" style="display:inline">{hidden_csrf(staff)}'
            f'{extra}<button type="submit"{ident}>{escape(label)}</button></form>')


def table(headers: Iterable[str], rows: Iterable[str]) -> str:
    """A table: a header row of (trusted) ``headers``, then already-rendered ``rows``."""
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>" + "".join(rows) + "</table>"


def poll_script(targets: list[tuple[str, str]], after: str) -> str:
    """The script that refreshes the page's fragments when the event stream moves."""
    pairs = ",".join(f"['{ident}','{url}']" for ident, url in targets)
    return f"<script>pollFragments([{pairs}], {json.dumps(after)});</script>"


# ---------------------------------------------------------------- layout, login, errors


def layout(title: str, body: str, staff: StaffSession | None = None, script: str = "") -> str:
    """The whole page around ``body`` (already-escaped HTML)."""
    nav = ""
    if staff is not None:
        links = ['<a href="/staff">队列</a>', '<a href="/staff/search">搜索</a>',
                 '<a href="/staff/search?status=closed">归档</a>']
        if staff.is_supervisor:
            links.append('<a href="/staff/users">工作人员</a>')
            links.append('<a href="/staff/audit">审计记录</a>')
            links.append('<a href="/staff/canned">常用语</a>')
            links.append('<a href="/staff/reminders">认证提醒</a>')
            links.append('<a href="/staff/dashboard">数据看板</a>')
        nav = " ".join(links) + (
            f'<span class="who">{escape(staff.username)}（{"主管" if staff.is_supervisor else "办事员"}）'
            f' <form method="post" action="/staff/logout"><input type="hidden" name="csrf" '
            f'value="{escape(staff.csrf)}"><button type="submit">退出</button></form></span>')
    return template("layout.html").substitute(
        title=escape(title), nav=nav, body=body, script=script,
        csrf=escape(staff.csrf) if staff else "")


def login_body(error: str = "") -> str:
    return template("login.html").substitute(error=f'<p class="error">{escape(error)}</p>' if error else "")


def error_body(title: str, message: str) -> str:
    return template("error.html").substitute(title=escape(title), message=escape(message))


# ---------------------------------------------------------------- queue page


def language_badge(language: str | None) -> str:
    """The chat's language for staff: 中文, or 藏文 highlighted (goes to Tibetan speakers first)."""
    code = language or ZH
    name = escape(LANGUAGE_NAMES.get(code, code))
    return name if code == ZH else f'<span class="lang lang-{escape(code)}" title="{escape(code)}">{name}</span>'


def since(moment: datetime | None, now: float | None = None) -> str:
    """How long ago, in words (``—`` when unknown)."""
    return waited(moment, now) + "前" if moment is not None else "—"


def case_rows(cases: list[Case], empty: str, names: dict[int, str] | None = None,
              inactive: set[int] | None = None, now: float | None = None,
              page: CasePage | None = None) -> str:
    """A table of cases; with ``page``, the time since the user's last message and unread marks."""
    if not cases:
        return f"<p>{escape(empty)}</p>"
    rows = []
    for case in cases:
        who = escape((names or {}).get(case.assigned_to or -1, "—"))
        if inactive and case.assigned_to in inactive and case.status in ("claimed", "signoff"):
            who += (f' <a class="warn" href="/staff/cases/{case.id}">（已停用，请重新分配）</a>')
        unread = page is not None and case.id in page.unread
        mark = ' <span class="unread-mark" title="用户有新消息还没看">● 未读</span>' if unread else ""
        last = escape(since(page.last_user_at.get(case.id), now)) if page is not None else "—"
        css = ' class="unread"' if unread else ""
        rows.append(
            f'<tr data-case="{case.id}"{css}>'
            f'<td><a href="/staff/cases/{case.id}">#{case.id}</a>{mark}</td>'
            f"<td>{label(REASON_LABELS, case.reason)}</td>"
            f"<td>{escape(who_for(case, page))}</td>"
            f"<td>{label(CHANNEL_LABELS, case.channel)}</td>"
            f"<td>{language_badge(case.language)}</td>"
            f'<td class="status-{escape(case.status)}">{label(STATUS_LABELS, case.status)}</td>'
            f"<td>{escape(waited(case.created_at, now)) if case.status == 'waiting' else '—'}</td>"
            f"<td>{last}</td>"
            f"<td>{who}</td>"
            f'<td><a href="/staff/cases/{case.id}">查看</a></td></tr>')
    return table(["案件", "原因", "退休人员", "渠道", "语言", "状态", "已等待", "用户最后发言", "处理人", ""], rows)


def who_for(case: Case, page: CasePage | None) -> str:
    """The pensioner's name when the case is linked to one (a list without ``page``: —)."""
    if page is None or not case.pensioner_id:
        return "—"
    return page.pensioners.get(case.pensioner_id, "—")


def more_link(page: CasePage, url: str) -> str:
    """Under a list that shows only its first page: how many there are, and where the rest are."""
    if page.total <= len(page.cases):
        return ""
    return (f'<p class="meta">共 {page.total} 个，这里只列出前 {len(page.cases)} 个。'
            f'<a href="{escape(url)}">查看全部（分页）</a></p>')


def queue_parts(staff: StaffSession, queues: Queues, users: list[StaffUser],
                now: float | None = None) -> dict[str, str]:
    """The queue page's lists: manual reviews and chat requests waiting, in hand, recently done."""
    names = {u.id: u.username for u in users}
    inactive = {u.id for u in users if not u.active}
    mine_filter = CaseFilter(status="claimed", agent=None if staff.is_supervisor else staff.username)
    return {
        "reviews": case_rows(queues.reviews.cases, "现在没有等待人工审核的案件。", now=now, page=queues.reviews)
        + more_link(queues.reviews, CaseFilter(status="waiting", kind="review").url()),
        "queue": case_rows(queues.chats.cases, "现在没有排队的案件。", now=now, page=queues.chats)
        + more_link(queues.chats, CaseFilter(status="waiting", kind="chat").url()),
        "mine": case_rows(queues.mine.cases, "没有正在处理的案件。", names, inactive, now=now, page=queues.mine)
        + more_link(queues.mine, mine_filter.url()),
        "done": case_rows(queues.done.cases, "还没有结束的案件。", names, now=now, page=queues.done)
        + f'<p><a href="{escape(CaseFilter(status="closed").url())}">已结束案件的归档（可搜索、分页）</a></p>',
    }


def failures(items: list[SendFailure], tz: Any, empty: str = "没有发送失败的消息。",
             resend: StaffSession | None = None) -> str:
    """The 发送失败 table: messages a channel gave up delivering after its retries.

    With ``resend`` (the staff member on a case page) each row has a 重发 button."""
    if not items:
        return f'<p class="meta">{escape(empty)}</p>'
    rows = []
    for f in items:
        case = f'<a href="/staff/cases/{f.case_id}">#{f.case_id}</a>' if f.case_id else "—"
        rows.append(f'<tr class="send-failed"><td>{escape(fmt_time(f.at, tz))}</td>'
                    f"<td>{label(CHANNEL_LABELS, f.channel)}</td>"
                    f"<td>{escape(f.user_id[:24])}</td><td>{case}</td><td>{escape(f.text[:80])}</td>"
                    f"<td>{escape(f.error[:80])}</td><td>{f.attempts or '—'}"
                    + (post_button(resend, f"/staff/cases/{f.case_id}/resend", "重发",
                                   f'<input type="hidden" name="failure" value="{f.id}">')
                       if resend is not None and f.case_id else "") + "</td></tr>")
    return table(["时间", "渠道", "用户", "案件", "消息", "原因", "尝试次数"], rows)


def recent(staff: StaffSession, chats: list[tuple[str, Conversation, float]], tz: Any) -> str:
    """Recent conversations ``(key, conversation, last time)``, each with 接入 unless a person has it."""
    rows = []
    for key, conv, at in chats:
        last = next((t["text"] for t in reversed(conv.transcript) if t.get("role") == "user"), "")
        action = ""
        if conv.mode != "human":
            action = post_button(staff, "/staff/pull", "接入",
                                 f'<input type="hidden" name="conversation_key" value="{escape(key)}">')
        rows.append(f"<tr><td>{label(CHANNEL_LABELS, conv.channel)}</td><td>{language_badge(conv.language)}</td>"
                    f"<td>{escape(conv.user_id[:24])}</td>"
                    f"<td>{escape(mask(last)[:60])}</td><td>{label(MODE_LABELS, conv.mode)}</td>"
                    f"<td>{escape(fmt_time(at, tz))}</td><td>{action}</td></tr>")
    if not rows:
        return "<p>最近没有对话。</p>"
    return table(["渠道", "语言", "用户", "最后一句", "状态", "时间", ""], rows)


def queue_body(staff: StaffSession, parts: dict[str, str], failures_html: str, message: str) -> str:
    if failures_html:
        failures_html = (f'<section><h2>发送失败（重试后仍没送到用户）</h2>'
                         f'<div id="failures">{failures_html}</div></section>')
    return template("queue.html").substitute(
        failures=failures_html, flash=flash(message),
        mine_title="所有处理中的案件" if staff.is_supervisor else "我正在处理的案件",
        done_title="最近结束的案件（全部）" if staff.is_supervisor else "我最近结束的案件", **parts)


def _options(choices: Iterable[tuple[str, str]], selected: str | None, everything: str) -> str:
    out = [f'<option value="">{escape(everything)}</option>']
    for value, text in choices:
        mark = " selected" if value == selected else ""
        out.append(f'<option value="{escape(value)}"{mark}>{escape(text)}</option>')
    return "".join(out)


def pager(f: CaseFilter, page: CasePage) -> str:
    """上一页 / 第 n 页，共 m 页 / 下一页, keeping the search."""
    parts = []
    if page.page > 1:
        parts.append(f'<a href="{escape(f.url(page.page - 1))}" id="page-prev">上一页</a>')
    parts.append(f"第 {page.page} 页，共 {page.pages} 页")
    if page.page < page.pages:
        parts.append(f'<a href="{escape(f.url(page.page + 1))}" id="page-next">下一页</a>')
    return " ".join(parts)


def search_body(f: CaseFilter, page: CasePage, users: list[StaffUser], channels: Iterable[str],
                now: float | None = None, error: str = "") -> str:
    """The search page: the form (kept filled in), one page of results, the page links."""
    names = {u.id: u.username for u in users}
    if error:
        summary = "请改一下搜索条件"
    elif f.searching:
        summary = f"找到 {page.total} 个案件"
    else:
        summary = f"全部案件（{page.total} 个，最新的在前）"
    kind_labels = {"review": "人工审核", "chat": "对话请求"}
    return template("search.html").substitute(
        q=escape(f.q), date_from=escape(f.date_from.isoformat() if f.date_from else ""),
        date_to=escape(f.date_to.isoformat() if f.date_to else ""),
        kinds=_options(((k, kind_labels[k]) for k in KINDS), f.kind, "全部"),
        reasons=_options(REASON_LABELS.items(), f.reason, "全部原因"),
        channels=_options(((c, CHANNEL_LABELS.get(c, c)) for c in channels), f.channel, "全部渠道"),
        statuses=_options(((st, STATUS_LABELS[st]) for st in CASE_STATUSES), f.status, "全部状态"),
        agents=_options(((u.username, u.username) for u in users), f.agent, "全部工作人员"),
        summary=escape(summary), pages=pager(f, page),
        error=f'<p class="error" id="search-error" role="alert">{escape(error)}</p>' if error else "",
        results=case_rows(page.cases, "没有找到符合条件的案件。", names, now=now, page=page))


# ---------------------------------------------------------------- case page


def messages(case_id: int, items: list[CaseMessage], names: dict[int, str], tz: Any) -> str:
    if not items:
        return '<p class="meta">还没有消息。</p>'
    out = []
    for m in items:
        who = AUTHOR_LABELS.get(m.author, m.author)
        if m.staff_id and m.author in ("staff", "note"):
            who += f" {names.get(m.staff_id, '')}"
        text = PHOTO_MARK.sub(lambda match: f'<img class="photo" alt="用户发来的照片" '
                              f'src="/staff/cases/{case_id}/files/{match.group(1)}">', escape(m.text))
        out.append(f'<div class="msg {escape(m.author)}"><span class="meta">{escape(who)} · '
                   f"{escape(fmt_time(m.created_at, tz))}</span>\n{text}</div>")
    return "".join(out)


def transcript(entries: list[dict[str, Any]], tz: Any) -> str:
    if not entries:
        return '<p class="meta">没有记录。</p>'
    out = []
    for entry in entries:
        role = "user" if entry.get("role") == "user" else "bot"
        at = entry.get("at")
        out.append(f'<div class="msg {role}"><span class="meta">{"用户" if role == "user" else "小助手"} · '
                   f"{escape(fmt_time(float(at), tz)) if isinstance(at, (int, float)) else ''}</span>\n"
                   f"{escape(str(entry.get('text', '')))}</div>")
    return "".join(out)


def pensioner(ctx: CaseContext, tz: Any, today: date | None = None) -> str:
    p = ctx.pensioner
    if p is None:
        return '<p class="meta">还不知道是哪位退休人员。</p>'
    tone, words = pensioner_state(p, today or datetime.now(tz).date())
    return ("<table>"
            f"<tr><th>姓名</th><td>{escape(p.name)}</td></tr>"
            f"<tr><th>身份证号</th><td>{escape(mask_id_number(p.id_number))}</td></tr>"
            f"<tr><th>地区</th><td>{escape(p.region or '—')}</td></tr>"
            f"<tr><th>状态</th><td class=\"{tone}\">{escape(words)}</td></tr>"
            f"<tr><th>上次认证</th><td>{escape(fmt_time(p.certified_at, tz))}（{escape(p.certified_by or '—')}）</td></tr>"
            f"<tr><th>下次到期</th><td>{escape(str(p.next_due or '—'))}</td></tr></table>")


def distance_bar(distance: float | None, threshold: float | None) -> str:
    """The distance of a selfie to the enrolled photo, with the threshold as a vertical mark."""
    if distance is None or not threshold:
        return '<p class="meta">没有比对距离</p>'
    width, mark = bar_percent(distance, threshold)
    tone = "bad" if distance > threshold else "ok"
    return (f'<div class="dist" title="越短越像"><div class="fill {tone}" style="width:{width}%"></div>'
            f'<div class="thr" style="left:{mark}%"></div></div>'
            f'<p class="meta">距离 {distance:.3f}，阈值 {threshold:.3f}（越小越像，超过竖线算不像）</p>')


def attempt(case_id: int, a: CertificationAttempt, tz: Any, reference: str, now: datetime) -> str:
    """One attempt: the enrolled photo beside the selfie, the verdict in words, the distance bar."""
    v = verdict(a)
    selfie = '<p class="meta">照片已过保存期限</p>' if a.photo_path else '<p class="meta">没有保存照片</p>'
    if photo_available(a, now):
        selfie = f'<img class="photo selfie" alt="这次的自拍" src="/staff/cases/{case_id}/photos/{a.id}">'
    extra = "".join(f"<li>{escape(name)}：{escape(value)}</li>" for name, value in detail_items(a.details))
    quality = quality_words(a.quality_codes or [])
    return template("attempt.html").substitute(
        tone=v.tone, reference=reference, selfie=selfie, words=escape(v.words),
        bar=distance_bar(a.distance, a.threshold), at=escape(fmt_time(a.created_at, tz)),
        channel=label(CHANNEL_LABELS, a.channel),
        who=f"代办（{escape(a.relationship or '家属')}）" if a.proxy else "本人",
        quality=" · 质量问题：" + escape(quality) if quality else "",
        extra="<ul>" + extra + "</ul>" if extra else "")


def evidence(ctx: CaseContext, tz: Any, now: datetime | None = None) -> str:
    """The review panel: every attempt with the enrolled photo beside its selfie."""
    now = now or datetime.now(timezone.utc)
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
        parts.extend(attempt(ctx.case.id, a, tz, reference, now) for a in ctx.attempts)
    else:
        parts.append(f'<div class="pair">{reference}</div><p class="meta">这个案件没有刷脸记录。</p>')
    if ctx.history:
        rows = (f"<tr><td>{escape(fmt_time(a.created_at, tz))}</td>"
                f"<td>{label(CHANNEL_LABELS, a.channel)}</td>"
                f"<td>{escape(verdict(a).words)}</td></tr>" for a in ctx.history[:20])
        parts.append("<h3>这位退休人员更早的刷脸记录</h3>" + table(["时间", "渠道", "结果"], rows))
    return "".join(parts)


def related(ctx: CaseContext, tz: Any) -> str:
    """Other open or recent cases of the same pensioner, linked."""
    if not ctx.related:
        return ""
    rows = "".join(
        f'<li><a href="/staff/cases/{c.id}">#{c.id}</a> {label(REASON_LABELS, c.reason)} · '
        f'{label(STATUS_LABELS, c.status)}'
        f'{" · " + label(DECISION_LABELS, c.decision) if c.decision else ""}'
        f' · {escape(fmt_time(c.created_at, tz))}</li>' for c in ctx.related)
    return ('<div class="related"><strong>同一位退休人员的其他案件（做决定前请先看，避免结论矛盾）：</strong>'
            f"<ul>{rows}</ul></div>")


def proxy(ctx: CaseContext, tz: Any) -> str:
    parts = []
    if ctx.case.proxy:
        parts.append("<table>" + "".join(
            f"<tr><th>{escape(str(k))}</th><td>{escape(mask(json.dumps(v, ensure_ascii=False)))}</td></tr>"
            for k, v in ctx.case.proxy.items()) + "</table>")
    for link in ctx.proxies:
        parts.append(f"<p>代办关系：{escape(link.relationship)}，退休人员编号 {link.pensioner_id}，"
                     f"{link.year}年，同意时间 {escape(fmt_time(link.consent_at, tz))}</p>")
    return "".join(parts) or '<p class="meta">不是代办。</p>'


def case_actions(staff: StaffSession, ctx: CaseContext) -> str:
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


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` element."""
    return (json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))


def reply_box(staff: StaffSession, ctx: CaseContext, canned: Iterable[CannedResponse] = ()) -> str:
    """The reply form (with the canned responses) and the internal-note form, where allowed."""
    case = ctx.case
    fields = {"case_id": case.id, "csrf_field": hidden_csrf(staff)}
    parts = []
    can_act = case.assigned_to == staff.staff_id or staff.is_supervisor
    if case.status == "claimed" and can_act:
        canned = list(canned)
        quick = "".join(f'<button type="button" class="quick-reply" title="/{escape(c.shortcut)}" '
                        f'data-text="{escape(c.text)}">{escape(c.text)}</button>' for c in canned)
        if not canned:
            quick = '<span class="meta">还没有常用语（主管可以在“常用语”页面添加）。</span>'
        data = script_json([{"shortcut": c.shortcut, "text": c.text} for c in canned])
        parts.append(template("reply_box.html").substitute(fields, quick=quick, canned_json=data))
    if case.status in ("claimed", "closed", "cancelled") or staff.is_supervisor:
        parts.append(template("note_box.html").substitute(fields))
    return "".join(parts)


def decision_box(staff: StaffSession, ctx: CaseContext) -> str:
    """How the case ends: the resolve form, or the supervisor's sign-off of an approval."""
    case = ctx.case
    fields = {"case_id": case.id, "csrf_field": hidden_csrf(staff)}
    if case.status == "signoff":
        if not staff.is_supervisor:
            return ('<section id="decision"><h2>处理结果</h2><p class="warn">已申请审核通过，'
                    '正在等待主管复核。</p></section>')
        if ctx.requested_by == staff.actor:
            return ('<section id="decision"><h2>处理结果</h2><p class="warn">这是您提出的审核通过申请，'
                    '需要另一位主管复核。</p></section>')
        return template("decision_signoff.html").substitute(
            fields, requested_by=escape((ctx.requested_by or "").removeprefix("staff:")),
            note=escape(case.note or ""))
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
    return template("decision_resolve.html").substitute(
        fields, related=related(ctx, None), approved=approved, others=others)


def state_key(case: Case) -> str:
    """What the page's actions depend on; when it changes, the page is stale."""
    return f"{case.status}:{case.assigned_to or 0}"


def head(staff: StaffSession, ctx: CaseContext, tz: Any) -> str:
    """The case's status line and actions (re-rendered live when someone else changes the case)."""
    case = ctx.case
    decision = f"· 结果：{label(DECISION_LABELS, case.decision)}" if case.decision else ""
    if case.note:
        decision += f"（{escape(case.note)}）"
    return template("case_head.html").substitute(
        case_id=case.id, reason=label(REASON_LABELS, case.reason), status=escape(case.status),
        state_key=escape(state_key(case)), status_label=label(STATUS_LABELS, case.status),
        channel=label(CHANNEL_LABELS, case.channel) + " · 语言：" + language_badge(case.language),
        user=escape(case.user_id),
        assignee=escape(ctx.assignee or "—"), created=escape(fmt_time(case.created_at, tz)),
        claimed=escape(fmt_time(case.claimed_at, tz)), closed=escape(fmt_time(case.closed_at, tz)),
        decision=decision, actions=case_actions(staff, ctx))


def case_body(staff: StaffSession, ctx: CaseContext, failed: list[SendFailure], tz: Any,
              message: str, canned: Iterable[CannedResponse] = (),
              reminders: dict[str, Any] | None = None) -> str:
    """The whole case page body."""
    case = ctx.case
    return template("case.html").substitute(
        flash=flash(message), case_id=case.id, head=head(staff, ctx, tz), state_key=escape(state_key(case)),
        transcript=transcript(case.transcript or [], tz),
        messages=messages(case.id, ctx.messages, ctx.staff_names, tz), reply_box=reply_box(staff, ctx, canned),
        pensioner=pensioner(ctx, tz), evidence=evidence(ctx, tz),
        reminders=reminders_panel(reminders, tz) if reminders is not None else '<p class="meta">还不知道是哪位退休人员。</p>',
        proxy=proxy(ctx, tz), decision_box=decision_box(staff, ctx),
        failures=failures(failed, tz, NO_CASE_FAILURES, resend=staff))


# ---------------------------------------------------------------- supervisors' pages


def users_body(staff: StaffSession, users: list[StaffUser], message: str, now: datetime) -> str:
    rows = []
    for user in users:
        locked = aware(user.locked_until)
        state = "在用" if user.active else "已停用"
        if locked and locked > now:
            state += "，已锁定"
        toggle = post_button(staff, f"/staff/users/{user.id}/{'deactivate' if user.active else 'activate'}",
                             "停用" if user.active else "启用")
        unlock = post_button(staff, f"/staff/users/{user.id}/unlock", "解锁")
        speaks = "、".join(LANGUAGE_NAMES.get(code, code) for code in user.language_list)
        rows.append(f"<tr><td>{escape(user.username)}</td><td>{'主管' if user.role == 'supervisor' else '办事员'}</td>"
                    f"<td>{escape(speaks)}</td>"
                    f"<td>{escape(state)}</td><td>{user.failed_logins}</td><td>{toggle} {unlock}</td></tr>")
    return template("users.html").substitute(
        flash=flash(message), users=table(["用户名", "角色", "语言", "状态", "连续失败", ""], rows),
        csrf=escape(staff.csrf))


def audit_body(entries: list[AuditLog], total: int, who: str | None, page_no: int, names: list[str],
               tz: Any) -> str:
    """The audit log page: a filter by staff member, one page of entries, page links."""
    options = '<option value="">全部工作人员</option>' + "".join(
        f'<option value="{escape(n)}"{" selected" if n == who else ""}>{escape(n)}</option>' for n in names)
    lines = []
    for row in entries:
        details = row.details or {}
        case = (row.target or "").removeprefix("case:")
        link = f'<a href="/staff/cases/{escape(case)}">#{escape(case)}</a>' if case.isdigit() else "—"
        lines.append(f"<tr><td>{escape(fmt_time(row.at, tz))}</td><td>{escape(row.actor.removeprefix('staff:'))}</td>"
                     f"<td>{label(AUDIT_LABELS, row.action)}</td><td>{link}</td>"
                     f"<td>{escape(str(details.get('note') or details.get('to') or '')[:200])}</td></tr>")
    entries_html = (table(["时间", "工作人员", "操作", "案件", "理由/说明"], lines) if lines
                    else '<p class="meta">没有记录。</p>')
    pages = ""
    query = f"&staff={quote(who)}" if who else ""
    if page_no > 1:
        pages += f'<a href="/staff/audit?page={page_no - 1}{escape(query)}">上一页</a> '
    if page_no * AUDIT_PAGE_SIZE < total:
        pages += f'<a href="/staff/audit?page={page_no + 1}{escape(query)}">下一页</a>'
    return template("audit.html").substitute(total=total, options=options, table=entries_html, pages=pages)


def canned_body(staff: StaffSession, rows: list[CannedResponse], message: str) -> str:
    """Supervisors' page of canned responses: each editable in place, deletable, and a form to add one."""
    lines = []
    for row in rows:
        base = f"/staff/canned/{row.id}"
        lines.append(
            f'<tr data-canned="{row.id}"><td><form method="post" action="{base}/update" class="canned-edit">'
            f'{hidden_csrf(staff)}<input name="shortcut" value="{escape(row.shortcut)}" maxlength="16" required '
            f'size="8"> <textarea name="text" rows="2" maxlength="500" required>{escape(row.text)}</textarea>'
            f'<button type="submit">保存</button></form></td>'
            f'<td>{escape(row.updated_by or "—")}</td>'
            f'<td>{post_button(staff, base + "/delete", "删除")}</td></tr>')
    table_html = (table(["关键字和内容", "最后修改", ""], lines) if lines
                  else '<p class="meta">还没有常用语。</p>')
    return template("canned.html").substitute(flash=flash(message), rows=table_html,
                                              csrf_field=hidden_csrf(staff))


# ---------------------------------------------------------------- reminders (issue 20)

REMINDER_STATUS_LABELS = {"sending": "发送中", "sent": "已送达", "retry": "等待重试", "send_failed": "发送失败",
                          "cancelled": "已取消（已认证）"}
REMINDER_KIND_LABELS = {"first": "第一次提醒", "second": "第二次提醒（到期前7天）", "missed": "逾期提醒"}
REMINDER_PAGE_SIZE = 50


def _reminder_time(value: str | None, tz: Any) -> str:
    return fmt_time(datetime.fromisoformat(value), tz) if value else "—"


def _reminder_table(items: list[dict[str, Any]], names: dict[int, str] | None, heads: list[str], empty: str,
                    row: Callable[[dict[str, Any]], tuple[str, str]]) -> str:
    """Reminder records as a table; ``row`` gives each one's ``<tr>`` attributes and cells.
    With ``names`` (a pensioner id's name) the first column is the pensioner."""
    if not items:
        return f'<p class="meta">{empty}</p>'
    rows = []
    for item in items:
        attributes, cells = row(item)
        pensioner = f"<td>{escape(names.get(item['pensioner_id'], '—'))}</td>" if names is not None else ""
        rows.append(f"<tr{attributes}>{pensioner}{cells}</tr>")
    return table((["退休人员"] if names is not None else []) + heads, rows)


def reminder_subscriptions(subs: list[dict[str, Any]], tz: Any, names: dict[int, str] | None = None) -> str:
    """Who asked to be reminded (from ``staff_summary``; users already masked)."""
    def row(sub: dict[str, Any]) -> tuple[str, str]:
        who = "本人" if sub["role"] == "self" else "家属"
        state = "订阅中" if sub["active"] else f"已取消（{_reminder_time(sub['cancelled_at'], tz)}）"
        return "", (f"<td>{label(CHANNEL_LABELS, sub['channel'])}</td><td>{who}</td>"
                    f"<td>{escape(sub['user'][:40])}</td><td>{escape(state)}</td>"
                    f"<td>{escape(_reminder_time(sub['created_at'], tz))}</td>")
    return _reminder_table(subs, names, ["渠道", "谁", "用户", "状态", "订阅时间"], "没有人订阅提醒。", row)


def reminder_deliveries(items: list[dict[str, Any]], tz: Any, names: dict[int, str] | None = None) -> str:
    """Reminders sent or tried; ``send_failed`` rows in red with the channel's reason."""
    def row(d: dict[str, Any]) -> tuple[str, str]:
        css = ' class="send-failed"' if d["status"] == "send_failed" else ""
        return f"{css} data-delivery=\"{d['id']}\"", (
            f"<td>{escape(d['due_date'])}</td><td>{label(REMINDER_KIND_LABELS, d['kind'])}</td>"
            f"<td>{label(REMINDER_STATUS_LABELS, d['status'])}</td><td>{d['attempts']}</td>"
            f"<td>{escape((d['error'] or '—')[:120])}</td>"
            f"<td>{escape(_reminder_time(d['sent_at'] or d['updated_at'], tz))}</td>")
    return _reminder_table(items, names, ["到期日", "哪一次", "状态", "尝试次数", "原因", "时间"], "没有发送记录。", row)


def reminders_panel(summary: dict[str, Any], tz: Any) -> str:
    """The case page's 认证提醒: this pensioner's subscriptions and deliveries."""
    return (reminder_subscriptions(summary["subscriptions"], tz)
            + "<h3>发送记录</h3>" + reminder_deliveries(summary["deliveries"], tz))


def reminders_body(summary: dict[str, Any], status: str | None, page_no: int, names: dict[int, str],
                   tz: Any) -> str:
    """Supervisors' reminders page: every delivery (filtered by status, 50 a page), recent subscriptions."""
    total = int(summary.get("deliveries_total", len(summary["deliveries"])))
    options = '<option value="">全部</option>' + "".join(
        f'<option value="{escape(k)}"{" selected" if k == status else ""}>{escape(v)}</option>'
        for k, v in REMINDER_STATUS_LABELS.items())
    query = f"&status={quote(status)}" if status else ""
    pages = []
    if page_no > 1:
        pages.append(f'<a href="/staff/reminders?page={page_no - 1}{escape(query)}">上一页</a>')
    if page_no * REMINDER_PAGE_SIZE < total:
        pages.append(f'<a href="/staff/reminders?page={page_no + 1}{escape(query)}">下一页</a>')
    return template("reminders.html").substitute(
        total=total, options=options, pages=" ".join(pages),
        deliveries=reminder_deliveries(summary["deliveries"], tz, names),
        subscriptions=reminder_subscriptions(summary["subscriptions"], tz, names))
