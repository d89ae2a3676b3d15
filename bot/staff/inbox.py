"""Finding cases: search and filters, the queues, unread markers and the tab-title count.

Search looks up a case number, an ID number (exact only: a partial ID number is refused,
so the search can never be used to enumerate people) or a pensioner's name, and filters by
reason, channel, agent, status, kind (manual review or chat request) and a date range.
Agents see the waiting queue and their own cases, supervisors everything. Every search is
audited with the query masked.

Unread: ``staff:seen:<staff id>:<case id>`` (Redis) holds the last case message id that
staff member saw on the case page. A claimed case is unread when it has a user message
newer than what its assignee saw.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Select, func, or_, select

from bot.core.errors import BadRequest
from bot.core.logs import mask_id_number, mask_name
from bot.core.storage.models import Case, CaseMessage, Pensioner, StaffUser
from bot.records.cases import REASON_LABELS
from bot.services import Services
from bot.staff.auth import StaffSession

PAGE_SIZE = 20
CASE_STATUSES = ("waiting", "claimed", "signoff", "closed", "cancelled")
OPEN_STATUSES = ("claimed", "signoff")
# Cases that end in a certification decision (人工审核), queued apart from chat requests.
REVIEW_REASONS = ("face_failed", "appeal", "family", "photo_reused", "face_review")
KINDS = ("review", "chat")
SEEN_PREFIX = "staff:seen:"
SEEN_TTL_S = 90 * 86400
MAX_QUERY = 64
CASE_NUMBER_RE = re.compile(r"^#?(\d{1,9})$")
ID_NUMBER_RE = re.compile(r"^(\d{17}[\dX]|\d{15})$")
CHANNEL_RE = re.compile(r"^[a-z]{2,16}$")


def _bad(detail: str, message: str) -> BadRequest:
    return BadRequest(detail, code="invalid_query", user_message=message)


@dataclass(frozen=True)
class CaseFilter:
    """A search: the words typed (``q``) and the filters, checked by ``parse_filter``."""

    q: str = ""
    reason: str | None = None
    channel: str | None = None
    agent: str | None = None
    status: str | None = None
    kind: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1

    @property
    def searching(self) -> bool:
        """True when anything narrows the list (paging alone does not)."""
        return bool(self.q or self.reason or self.channel or self.agent or self.status or self.kind
                    or self.date_from or self.date_to)

    def params(self, page: int | None = None) -> dict[str, str]:
        """The query parameters of this search (for links), at ``page``."""
        values = {"q": self.q, "reason": self.reason, "channel": self.channel, "agent": self.agent,
                  "status": self.status, "kind": self.kind,
                  "from": self.date_from.isoformat() if self.date_from else None,
                  "to": self.date_to.isoformat() if self.date_to else None}
        out = {k: v for k, v in values.items() if v}
        out["page"] = str(page or self.page)
        return out

    def url(self, page: int | None = None, path: str = "/staff/search") -> str:
        return f"{path}?{urlencode(self.params(page))}"

    def masked(self) -> dict[str, Any]:
        """What the audit log keeps about this search: the query masked, the filters."""
        details: dict[str, Any] = {k: v for k, v in self.params().items() if k not in ("q", "page")}
        if self.q:
            details["q"] = mask_query(self.q)
        details["page"] = self.page
        return details


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _bad(f"{name} must be YYYY-MM-DD", "日期格式不对，请用 2026-01-31 这样的格式。") from exc


def parse_filter(query: Mapping[str, str]) -> CaseFilter:
    """The search of a request's query string; a 400 with a Chinese message on bad input."""
    q = " ".join((query.get("q") or "").split())
    if len(q) > MAX_QUERY:
        raise _bad("q too long", "搜索内容太长了。")
    reason = query.get("reason") or None
    if reason is not None and reason not in REASON_LABELS:
        raise _bad("unknown reason", "没有这个转人工原因。")
    channel = query.get("channel") or None
    if channel is not None and not CHANNEL_RE.match(channel):
        raise _bad("bad channel", "渠道不对。")
    agent = query.get("agent") or None
    if agent is not None and len(agent) > 64:
        raise _bad("agent too long", "工作人员用户名不对。")
    status = query.get("status") or None
    if status is not None and status not in CASE_STATUSES:
        raise BadRequest("unknown status", code="invalid_status", user_message="状态不对。")
    kind = query.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise _bad("kind must be review or chat", "类别不对。")
    date_from, date_to = _date(query.get("from"), "from"), _date(query.get("to"), "to")
    if date_from and date_to and date_from > date_to:
        raise _bad("from after to", "开始日期晚于结束日期。")
    raw_page = query.get("page") or "1"
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 10000:
        raise _bad("page must be a number from 1", "页码不对。")
    if q:
        classify(q)  # refuse a partial ID number now, with its message
    return CaseFilter(q=q, reason=reason, channel=channel, agent=agent, status=status, kind=kind,
                      date_from=date_from, date_to=date_to, page=int(raw_page))


def classify(q: str) -> tuple[str, str | int]:
    """What ``q`` is: ``("case", number)``, ``("id_number", id)`` or ``("name", text)``.

    A run of 10 to 17 digits (or 18 that are not an ID number) is refused: ID numbers are
    only ever matched whole."""
    compact = q.replace(" ", "").upper()
    number = CASE_NUMBER_RE.match(compact)
    if number:
        return "case", int(number.group(1))
    if ID_NUMBER_RE.match(compact):
        return "id_number", compact
    if re.fullmatch(r"[\dX*]{6,}", compact) or sum(c.isdigit() for c in compact) >= 6:
        raise _bad("partial ID number", "身份证号请输入完整的18位（不支持只输入一部分）。")
    return "name", q


def mask_query(q: str) -> str:
    """A search as the audit log keeps it: ID numbers and names masked, case numbers kept."""
    try:
        what, value = classify(q)
    except BadRequest:
        return "*" * len(q)
    if what == "case":
        return f"#{value}"
    if what == "id_number":
        return mask_id_number(str(value)) if len(str(value)) == 18 else "***"
    return mask_name(str(value))


@dataclass
class CasePage:
    """One page of cases and the total number that matched."""

    cases: list[Case]
    total: int
    page: int = 1
    page_size: int = PAGE_SIZE
    last_user_at: dict[int, datetime] = field(default_factory=dict)
    unread: set[int] = field(default_factory=set)
    pensioners: dict[int, str] = field(default_factory=dict)  # pensioner id -> name

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass
class Queues:
    """The queue page: manual reviews and chat requests waiting, cases in hand, recently done."""

    reviews: CasePage
    chats: CasePage
    mine: CasePage
    done: CasePage


@dataclass
class Counts:
    waiting: int
    reviews: int
    unread: int

    @property
    def attention(self) -> int:
        """The number in the tab title: cases waiting plus my cases with unread messages."""
        return self.waiting + self.unread


class Inbox:
    """Reading the case lists for one application (the desk acts; the inbox finds)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.db = services.db
        self.redis = services.redis

    # ------------------------------------------------------------------ search

    @staticmethod
    def visible(query: Select[Any], staff: StaffSession) -> Select[Any]:
        if staff.is_supervisor:
            return query
        return query.where(or_(Case.status == "waiting", Case.assigned_to == staff.staff_id))

    def _where(self, f: CaseFilter, tz: Any) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if f.q:
            what, value = classify(f.q)
            if what == "case":
                where.append(Case.id == value)
            elif what == "id_number":
                where.append(Case.pensioner_id.in_(select(Pensioner.id).where(Pensioner.id_number == value)))
            else:
                name = str(value).replace(" ", "")
                match = Pensioner.name == name if len(name) < 2 else Pensioner.name.contains(name, autoescape=True)
                where.append(Case.pensioner_id.in_(select(Pensioner.id).where(match)))
        if f.status:
            where.append(Case.status == f.status)
        if f.reason:
            where.append(Case.reason == f.reason)
        if f.kind == "review":
            where.append(Case.reason.in_(REVIEW_REASONS))
        elif f.kind == "chat":
            where.append(Case.reason.not_in(REVIEW_REASONS))
        if f.channel:
            where.append(Case.channel == f.channel)
        if f.agent:
            where.append(Case.assigned_to.in_(select(StaffUser.id).where(StaffUser.username == f.agent)))
        zone = tz or timezone.utc
        if f.date_from:
            where.append(Case.created_at >= datetime.combine(f.date_from, time.min, zone))
        if f.date_to:
            where.append(Case.created_at < datetime.combine(f.date_to + timedelta(days=1), time.min, zone))
        return where

    async def search(self, staff: StaffSession, f: CaseFilter, tz: Any = None,
                     page_size: int = PAGE_SIZE) -> CasePage:
        """One page of the cases matching ``f`` (waiting-only lists oldest first, else newest first)."""
        query = self.visible(select(Case), staff).where(*self._where(f, tz))
        order = (Case.created_at, Case.id) if f.status == "waiting" else (Case.id.desc(),)
        async with self.db.session() as session:
            total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
            rows = list(await session.scalars(query.order_by(*order)
                                              .offset((f.page - 1) * page_size).limit(page_size)))
        return await self._annotate(CasePage(rows, total, f.page, page_size))

    async def audit_search(self, staff: StaffSession, f: CaseFilter, total: int) -> None:
        await self.db.audit(staff.actor, "case_search", **f.masked(), results=total)

    async def queues(self, staff: StaffSession, tz: Any = None) -> Queues:
        """The first page of each list on the queue page."""
        waiting = CaseFilter(status="waiting")
        reviews = await self.search(staff, replace(waiting, kind="review"), tz)
        chats = await self.search(staff, replace(waiting, kind="chat"), tz)
        mine = await self._mine(staff)
        done = await self._done(staff)
        return Queues(reviews=reviews, chats=chats, mine=mine, done=done)

    async def _mine(self, staff: StaffSession) -> CasePage:
        query = select(Case).where(Case.status.in_(OPEN_STATUSES))
        if not staff.is_supervisor:
            query = query.where(Case.assigned_to == staff.staff_id)
        return await self._first_page(query, (Case.claimed_at, Case.id))

    async def _done(self, staff: StaffSession) -> CasePage:
        query = self.visible(select(Case), staff).where(Case.status.in_(("closed", "cancelled")))
        return await self._first_page(query, (Case.closed_at.desc(), Case.id.desc()))

    async def _first_page(self, query: Select[Any], order: tuple[Any, ...]) -> CasePage:
        async with self.db.session() as session:
            total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
            rows = list(await session.scalars(query.order_by(*order).limit(PAGE_SIZE)))
        return await self._annotate(CasePage(rows, total))

    # ------------------------------------------------------------------ times and unread

    async def _annotate(self, page: CasePage) -> CasePage:
        page.last_user_at = await self.last_user_messages(page.cases)
        page.unread = await self.unread(page.cases)
        ids = {c.pensioner_id for c in page.cases if c.pensioner_id}
        if ids:
            async with self.db.session() as session:
                found = await session.execute(select(Pensioner.id, Pensioner.name).where(Pensioner.id.in_(ids)))
                page.pensioners = dict(found.all())
        return page

    async def last_user_messages(self, cases: list[Case]) -> dict[int, datetime]:
        """When the user last wrote, per case: a message to staff, else the transcript's last line."""
        if not cases:
            return {}
        async with self.db.session() as session:
            found = await session.execute(
                select(CaseMessage.case_id, func.max(CaseMessage.created_at))
                .where(CaseMessage.case_id.in_([c.id for c in cases]), CaseMessage.author == "user")
                .group_by(CaseMessage.case_id))
            out = {case_id: at for case_id, at in found.all() if at is not None}
        for case in cases:
            if case.id in out:
                continue
            stamps = [e.get("at") for e in case.transcript or [] if e.get("role") == "user"]
            numbers = [s for s in stamps if isinstance(s, (int, float))]
            if numbers:
                out[case.id] = datetime.fromtimestamp(max(numbers), timezone.utc)
        return {k: v if v.tzinfo else v.replace(tzinfo=timezone.utc) for k, v in out.items()}

    async def unread(self, cases: list[Case]) -> set[int]:
        """The claimed cases with a user message their assignee has not seen."""
        held = [c for c in cases if c.status in OPEN_STATUSES and c.assigned_to]
        if not held:
            return set()
        async with self.db.session() as session:
            found = await session.execute(
                select(CaseMessage.case_id, func.max(CaseMessage.id))
                .where(CaseMessage.case_id.in_([c.id for c in held]), CaseMessage.author == "user")
                .group_by(CaseMessage.case_id))
            newest = dict(found.all())
        talked = [c for c in held if c.id in newest]
        if not talked:
            return set()
        seen = await self.redis.mget([self._seen_key(c.assigned_to or 0, c.id) for c in talked])
        return {c.id for c, mark in zip(talked, seen, strict=True) if int(mark or 0) < int(newest[c.id])}

    @staticmethod
    def _seen_key(staff_id: int, case_id: int) -> str:
        return f"{SEEN_PREFIX}{staff_id}:{case_id}"

    async def mark_seen(self, staff: StaffSession, case: Case, last_message_id: int) -> None:
        """The assignee looked at the case's messages up to ``last_message_id``."""
        if case.assigned_to != staff.staff_id or last_message_id <= 0:
            return
        key = self._seen_key(staff.staff_id, case.id)
        seen = await self.redis.get(key)
        if int(seen or 0) < last_message_id:
            await self.redis.set(key, str(last_message_id), ex=SEEN_TTL_S)

    async def counts(self, staff: StaffSession) -> Counts:
        """Waiting cases (reviews among them) and my cases with unread user messages."""
        async with self.db.session() as session:
            found = await session.execute(
                select(Case.reason, func.count()).where(Case.status == "waiting").group_by(Case.reason))
            by_reason = dict(found.all())
            held = list(await session.scalars(select(Case).where(
                Case.status.in_(OPEN_STATUSES), Case.assigned_to == staff.staff_id)))
        return Counts(waiting=int(sum(by_reason.values())),
                      reviews=int(sum(n for r, n in by_reason.items() if r in REVIEW_REASONS)),
                      unread=len(await self.unread(held)))

    async def pensioner_names(self, ids: set[int]) -> dict[int, str]:
        """Masked names (王*兰) of these pensioners, for lists that only need to tell them apart."""
        if not ids:
            return {}
        async with self.db.session() as session:
            found = await session.execute(select(Pensioner.id, Pensioner.name).where(Pensioner.id.in_(ids)))
            return {pid: f"{mask_name(name)}（编号{pid}）" for pid, name in found.all()}
