"""What staff do with cases: claim, relay, notes, decisions, hand back, pull, reassign.

Every change of a case is a conditional UPDATE (``... WHERE status = 'claimed'``), so two
staff racing on one case cannot both win, whichever server process they use. The chat's
conversation state in Redis changes under the pipeline's own per-chat lock. Messages to
the user go through ``services.outbox.push`` (the user's own channel). Every action is
written to the audit log.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update

from bot.core.conversation import Frame, Mode
from bot.core.errors import BadRequest, Forbidden, NotFound
from bot.core.facts import format_date
from bot.core.i18n import LANGUAGE_NAMES, ZH, tr
from bot.core.messages import Reply
from bot.core.outbox import SEND_FAILED, DeliveryFailed
from bot.core.storage.models import (
    AuditLog,
    Case,
    CaseMessage,
    CertificationAttempt,
    FaceTemplate,
    Pensioner,
    ProxyLink,
    StaffUser,
)
from bot.records.cases import CaseConflict
from bot.records.events import Chat, Step
from bot.services import Services
from bot.staff.auth import StaffSession
from bot.staff.review import approval_concerns
from dialogs.menu import MENU_LABELS
from handlers.middleware import SURVEY_OPTIONS, SURVEY_QUESTION

DECISIONS = ("approved", "rejected", "resolved")
OPEN_STATUSES = ("waiting", "claimed", "signoff")
EVIDENCE_DAYS = 7  # face attempts of the pensioner this recent count as the case's evidence
RECENT_CASE_DAYS = 90  # decided cases of the same pensioner this recent are "related"
DECISION_ACTIONS = ("case_approved", "case_rejected", "case_resolved", "approval_requested",
                    "approval_declined", "hand_back", "assign_case", "claim_case", "pull_chat")
CONVERSATION_KEY_RE = re.compile(r"^[a-z]{2,16}:[A-Za-z0-9_.:@\-]{1,128}$")
STAFF_PREFIX = tr("工作人员：")  # what reaches the user goes through the catalog
GREETING = tr("您好，我是社保经办机构的工作人员，已经看到您的问题，接下来由我为您服务。")


@dataclass
class SendFailure:
    """A message a channel gave up delivering (from the audit log)."""

    id: int
    at: datetime
    conversation_key: str
    error: str
    text: str
    attempts: int | None
    case_id: int | None  # the newest case of that conversation, if any

    @property
    def channel(self) -> str:
        return self.conversation_key.split(":", 1)[0]

    @property
    def user_id(self) -> str:
        return self.conversation_key.split(":", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        at = aware(self.at)
        return {"id": self.id, "at": at.isoformat() if at else None, "channel": self.channel,
                "user_id": self.user_id, "conversation_key": self.conversation_key, "error": self.error,
                "text": self.text, "attempts": self.attempts, "case_id": self.case_id}


@dataclass
class CaseContext:
    """Everything the case view shows besides the case row itself."""

    case: Case
    messages: list[CaseMessage]
    pensioner: Pensioner | None
    attempts: list[CertificationAttempt]
    proxies: list[ProxyLink]
    assignee: str | None
    staff_names: dict[int, str] = field(default_factory=dict)
    active_staff: list[str] = field(default_factory=list)
    template: FaceTemplate | None = None
    history: list[CertificationAttempt] = field(default_factory=list)  # the pensioner's, other chats
    related: list[Case] = field(default_factory=list)  # other open/recent cases of the pensioner
    concerns: list[str] = field(default_factory=list)  # why an approval would be against the evidence
    requested_by: str | None = None  # who asked for the supervisor's sign-off

    @property
    def reference_available(self) -> bool:
        return self.template is not None and photo_available(self.template)


class NeedsAcknowledgement(CaseConflict):
    """Other open or recent cases of the same pensioner: the decision must be confirmed."""

    code = "other_cases"

    def __init__(self, detail: str, cases: list[Case]) -> None:
        numbers = "、".join(f"#{c.id}" for c in cases)
        super().__init__(detail, user_message=f"同一位退休人员还有其他案件（{numbers}），结论可能互相矛盾。请先看一下这些案件，确认后再提交。")
        self.cases = cases


def chat_attempts(case: Case) -> ColumnElement[bool]:
    """Attempts made in this case's chat: same channel and user (a legacy row may hold the key)."""
    return or_(and_(CertificationAttempt.channel == case.channel, CertificationAttempt.chat_user == case.user_id),
               CertificationAttempt.chat_user == case.conversation_key)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def photo_available(attempt: CertificationAttempt | FaceTemplate, now: datetime | None = None) -> bool:
    """A photo is shown only while its retention lasts."""
    expires = aware(attempt.photo_expires_at)
    return bool(attempt.photo_path) and expires is not None and expires > (now or datetime.now(timezone.utc))


def due_text(due: date) -> str:
    """The date as the user reads it (Tibetan order and digits in a Tibetan chat)."""
    return format_date(due)


async def note_first_reply(session: Any, case_id: int) -> None:
    """Remember when staff first wrote to the user in this case (for the dashboard)."""
    await session.execute(update(Case).where(Case.id == case_id, Case.first_reply_at.is_(None))
                          .values(first_reply_at=datetime.now(timezone.utc)))


class StaffDesk:
    """Case work for one application; stateless apart from the shared services."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.db = services.db
        self.handoff = services.handoff

    # ------------------------------------------------------------------ reading

    async def get_case(self, case_id: int) -> Case:
        async with self.db.session() as session:
            case = await session.get(Case, case_id)
        if case is None:
            raise NotFound(f"case {case_id}", user_message="没有这个案件。")
        return case

    @staticmethod
    def can_see(staff: StaffSession, case: Case) -> bool:
        """Agents see the waiting queue and their own cases; supervisors see everything."""
        return staff.is_supervisor or case.status == "waiting" or case.assigned_to == staff.staff_id

    async def visible_case(self, staff: StaffSession, case_id: int) -> Case:
        case = await self.get_case(case_id)
        if not self.can_see(staff, case):
            raise Forbidden(f"case {case_id} belongs to someone else",
                            user_message="这个案件由其他工作人员处理。")
        return case

    async def languages_of(self, staff_id: int) -> list[str]:
        """The languages a staff member chats in (Chinese at least)."""
        async with self.db.session() as session:
            user = await session.get(StaffUser, staff_id)
        return user.language_list if user is not None else [ZH]

    async def reserved_for_speakers(self, staff: StaffSession, case: Case) -> bool:
        """A chat in a language this person does not speak (Tibetan) is kept for the colleagues
        who do for ``staff.language_first_s`` after it started waiting, when one is active."""
        window = self.services.settings.staff.language_first_s
        if case.language == ZH or window <= 0 or case.language in await self.languages_of(staff.staff_id):
            return False
        created = aware(case.created_at)
        if created is None or (datetime.now(timezone.utc) - created).total_seconds() >= window:
            return False
        async with self.db.session() as session:
            speakers = await session.scalars(select(StaffUser).where(StaffUser.active.is_(True)))
            return any(case.language in user.language_list for user in speakers)

    async def list_cases(self, staff: StaffSession, status: str | None = None) -> list[Case]:
        """Waiting cases oldest first (those in a language this person speaks besides Chinese,
        e.g. Tibetan, before the others), then the others newest first."""
        query = select(Case)
        if not staff.is_supervisor:
            query = query.where(or_(Case.status == "waiting", Case.assigned_to == staff.staff_id))
        if status:
            query = query.where(Case.status == status)
        async with self.db.session() as session:
            rows = list(await session.scalars(query.order_by(Case.created_at.desc()).limit(500)))
        spoken = set(await self.languages_of(staff.staff_id)) - {ZH}
        waiting = sorted((c for c in rows if c.status == "waiting"),
                         key=lambda c: (c.language not in spoken, c.created_at, c.id))
        others = [c for c in rows if c.status != "waiting"]
        return waiting + others

    async def messages(self, case_id: int, after_id: int = 0) -> list[CaseMessage]:
        async with self.db.session() as session:
            return list(await session.scalars(
                select(CaseMessage).where(CaseMessage.case_id == case_id, CaseMessage.id > after_id)
                .order_by(CaseMessage.id)))

    async def context(self, staff: StaffSession, case_id: int) -> CaseContext:
        """Case, messages, pensioner record, face evidence, related cases and proxy details."""
        case = await self.visible_case(staff, case_id)
        messages = await self.messages(case_id)
        now = datetime.now(timezone.utc)
        template = None
        history: list[CertificationAttempt] = []
        related: list[Case] = []
        async with self.db.session() as session:
            pensioner = await session.get(Pensioner, case.pensioner_id) if case.pensioner_id else None
            mine = chat_attempts(case)
            who: list[ColumnElement[bool]] = [mine]
            if case.pensioner_id:
                who.append(and_(CertificationAttempt.pensioner_id == case.pensioner_id,
                                CertificationAttempt.created_at >= (aware(case.created_at) or now)
                                - timedelta(days=EVIDENCE_DAYS)))
            attempts = list(await session.scalars(
                select(CertificationAttempt).where(or_(*who))
                .order_by(CertificationAttempt.created_at.desc()).limit(30)))
            if case.pensioner_id:
                seen = {a.id for a in attempts}
                history = [a for a in await session.scalars(
                    select(CertificationAttempt).where(CertificationAttempt.pensioner_id == case.pensioner_id)
                    .order_by(CertificationAttempt.created_at.desc()).limit(50)) if a.id not in seen]
                template = await session.scalar(
                    select(FaceTemplate).where(FaceTemplate.pensioner_id == case.pensioner_id))
                related = list(await session.scalars(
                    select(Case).where(Case.pensioner_id == case.pensioner_id, Case.id != case.id,
                                       or_(Case.status.in_(OPEN_STATUSES),
                                           Case.created_at >= now - timedelta(days=RECENT_CASE_DAYS)))
                    .order_by(Case.created_at.desc()).limit(20)))
            proxies = list(await session.scalars(
                select(ProxyLink).where(ProxyLink.proxy_key == case.conversation_key,
                                        ProxyLink.removed_at.is_(None))))
            staff_rows = list(await session.scalars(select(StaffUser)))
            requested_by = None
            if case.status == "signoff":
                requested_by = await session.scalar(
                    select(AuditLog.actor).where(AuditLog.action == "approval_requested",
                                                 AuditLog.target == f"case:{case.id}")
                    .order_by(AuditLog.id.desc()).limit(1))
        names = {u.id: u.username for u in staff_rows}
        evidence = [a for a in attempts if case.pensioner_id and a.pensioner_id == case.pensioner_id]
        return CaseContext(case=case, messages=messages, pensioner=pensioner, attempts=attempts,
                           proxies=proxies, assignee=names.get(case.assigned_to or -1),
                           staff_names=names, active_staff=sorted(u.username for u in staff_rows if u.active),
                           template=template, history=history, related=related,
                           concerns=approval_concerns(evidence, template is not None),
                           requested_by=requested_by)

    def _read_photo(self, relative: str | None) -> bytes | None:
        """A stored face photo: paths are relative to the photo store (``data_dir/faces``);
        older rows may be relative to ``data_dir``. Nothing outside ``data_dir`` is read."""
        data_dir = self.services.settings.storage.data_dir.resolve()
        if not relative:
            return None
        path = Path(relative)
        for base in (data_dir / "faces", data_dir):
            candidate = (path if path.is_absolute() else base / path).resolve()
            if candidate.is_relative_to(data_dir) and candidate.is_file():
                return candidate.read_bytes()
        return None

    async def photo(self, staff: StaffSession, case_id: int, attempt_id: int) -> tuple[bytes, str]:
        """The photo of one attempt of this case (its chat, or its pensioner), while retention allows."""
        case = await self.visible_case(staff, case_id)
        async with self.db.session() as session:
            attempt = await session.get(CertificationAttempt, attempt_id)
        linked = attempt is not None and (
            (attempt.channel == case.channel and attempt.chat_user == case.user_id)
            or attempt.chat_user == case.conversation_key
            or (case.pensioner_id is not None and attempt.pensioner_id == case.pensioner_id))
        if attempt is None or not linked or not photo_available(attempt):
            raise NotFound("no photo", user_message="照片不存在或已超过保存期限。")
        data = await asyncio.to_thread(self._read_photo, attempt.photo_path)
        if data is None:
            raise NotFound("photo file missing", user_message="照片不存在或已超过保存期限。")
        await self.db.audit(staff.actor, "view_photo", target=f"case:{case_id}", attempt=attempt_id)
        return data, _image_type(data)

    async def reference_photo(self, staff: StaffSession, case_id: int) -> tuple[bytes, str]:
        """The enrolled photo (登记照片) of the case's pensioner, while retention allows."""
        case = await self.visible_case(staff, case_id)
        template = None
        if case.pensioner_id is not None:
            async with self.db.session() as session:
                template = await session.scalar(
                    select(FaceTemplate).where(FaceTemplate.pensioner_id == case.pensioner_id))
        if template is None or not photo_available(template):
            raise NotFound("no enrolled photo", user_message="没有登记照片，或已超过保存期限。")
        data = await asyncio.to_thread(self._read_photo, template.photo_path)
        if data is None:
            raise NotFound("enrolled photo file missing", user_message="没有登记照片，或已超过保存期限。")
        await self.db.audit(staff.actor, "view_photo", target=f"case:{case_id}", reference=True,
                            pensioner=case.pensioner_id)
        return data, _image_type(data)

    async def case_file(self, staff: StaffSession, case_id: int, name: str) -> tuple[bytes, str]:
        """A photo the user sent while staff handled the chat (retention applies)."""
        await self.visible_case(staff, case_id)
        data = await asyncio.to_thread(self.handoff.case_photo, case_id, name)
        if data is None:
            raise NotFound("no such photo", user_message="照片不存在或已超过保存期限。")
        await self.db.audit(staff.actor, "view_photo", target=f"case:{case_id}", file=name)
        return data, _image_type(data)

    # ------------------------------------------------------------------ acting

    def _require_handler(self, staff: StaffSession, case: Case,
                         statuses: tuple[str, ...] = ("claimed",)) -> None:
        if case.status not in statuses:
            raise CaseConflict(f"case {case.id} is {case.status}",
                               user_message="这个案件现在不能这样操作（还没认领或已经结束）。")
        if case.assigned_to != staff.staff_id and not staff.is_supervisor:
            raise Forbidden(f"case {case.id} belongs to someone else",
                            user_message="这个案件由其他工作人员处理。")

    async def claim(self, staff: StaffSession, case_id: int) -> Case:
        """Take a waiting case; exactly one of several racing staff wins (409 for the rest)."""
        case = await self.get_case(case_id)  # a case claimed by someone else is a 409, not a 403
        if case.status == "waiting" and await self.reserved_for_speakers(staff, case):
            raise CaseConflict(f"case {case_id} is kept for {case.language} speakers",
                               user_message=f"这是{LANGUAGE_NAMES.get(case.language, case.language)}对话，先留给会这种语言的同事认领；稍后如果还没人认领，您就可以认领。")
        await self._take(case, staff.staff_id)
        await self.db.audit(staff.actor, "claim_case", target=f"case:{case_id}")
        await self._greet(case_id, case.conversation_key, staff.staff_id)
        await self.handoff.publish("case_claimed", case_id=case_id, by=staff.username)
        return await self.get_case(case_id)

    async def _greet(self, case_id: int, conversation_key: str, staff_id: int) -> None:
        """The greeting a person sends on taking the chat, kept in the case like any message."""
        async with self.db.session() as session:
            session.add(CaseMessage(case_id=case_id, author="staff", staff_id=staff_id, text=GREETING))
            await note_first_reply(session, case_id)
        await self.services.outbox.push(conversation_key, [Reply(GREETING)])
        await self.handoff.note_staff_spoke(conversation_key)

    async def _take(self, case: Case, staff_id: int) -> None:
        """waiting -> claimed for ``staff_id`` and the chat -> ``human``, atomically."""
        if case.status != "waiting":
            raise CaseConflict(f"case {case.id} is {case.status}", user_message="这个案件已经被别人认领了。")
        async with self.handoff.chat_lock(case.conversation_key):
            async with self.db.session() as session:
                result = await session.execute(
                    update(Case).where(Case.id == case.id, Case.status == "waiting")
                    .values(status="claimed", assigned_to=staff_id, claimed_at=datetime.now(timezone.utc)))
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise CaseConflict(f"case {case.id} was claimed by someone else",
                                       user_message="这个案件已经被别人认领了。")
            conversations = self.handoff.conversations
            conv = await conversations.load(case.conversation_key)
            conv.switch_mode(Mode.HUMAN)
            conv.case_id = case.id
            conv.stack.clear()
            await conversations.save(conv)
        await self.handoff.dequeue(case.id)

    def _text(self, value: Any, what: str = "text") -> str:
        limit = self.services.settings.server.max_text_chars
        if not isinstance(value, str) or not value.strip():
            raise BadRequest(f"{what} must be a non-empty string", code=f"invalid_{what}",
                             user_message="内容不能为空。")
        if len(value) > limit:
            raise BadRequest(f"{what} longer than {limit}", code=f"{what}_too_long",
                             user_message=f"内容太长了，请不要超过{limit}个字。")
        return value.strip()

    async def reply(self, staff: StaffSession, case_id: int, text: Any) -> CaseMessage:
        """Send a message to the user through their own channel."""
        body = self._text(text)
        case = await self.visible_case(staff, case_id)
        self._require_handler(staff, case, ("claimed", "signoff"))
        async with self.db.session() as session:
            message = CaseMessage(case_id=case_id, author="staff", staff_id=staff.staff_id, text=body)
            session.add(message)
            await note_first_reply(session, case_id)
        delivered = await self.services.outbox.push(case.conversation_key, [Reply(STAFF_PREFIX + body)])
        await self.handoff.note_staff_spoke(case.conversation_key)
        details: dict[str, Any] = {"chars": len(body)} if delivered else {"chars": len(body), "delivered": False}
        await self.db.audit(staff.actor, "staff_message", target=f"case:{case_id}", **details)
        await self.handoff.publish("staff_message", case_id=case_id, by=staff.username)
        if not delivered:  # kept in the case and listed under 发送失败; the staff member must know
            raise DeliveryFailed(f"staff message {message.id} of case {case_id} not delivered")
        return message

    async def send_failures(self, staff: StaffSession, case_id: int | None = None,
                            limit: int = 50) -> list[SendFailure]:
        """Messages the channels gave up delivering, newest first.

        Supervisors see all of them; anyone who may see a case sees those of its conversation
        since the case was opened."""
        query = select(AuditLog).where(AuditLog.action == SEND_FAILED)
        if case_id is not None:
            case = await self.visible_case(staff, case_id)
            query = query.where(AuditLog.target == case.conversation_key, AuditLog.at >= case.created_at)
        elif not staff.is_supervisor:
            raise Forbidden("supervisors only", user_message="只有主管可以查看全部发送失败记录。")
        async with self.db.session() as session:
            rows = list(await session.scalars(query.order_by(AuditLog.id.desc()).limit(max(1, min(limit, 500)))))
            keys = {row.target for row in rows if row.target}
            newest: dict[str, int] = {}
            if keys:
                found = await session.execute(select(Case.conversation_key, func.max(Case.id))
                                              .where(Case.conversation_key.in_(keys))
                                              .group_by(Case.conversation_key))
                newest = {key: case_no for key, case_no in found.all()}
        out = []
        for row in rows:
            details = row.details or {}
            attempts = details.get("attempts")
            out.append(SendFailure(
                id=row.id, at=row.at, conversation_key=row.target or "?:?",
                error=str(details.get("error", ""))[:200], text=str(details.get("text", ""))[:500],
                attempts=attempts if isinstance(attempts, int) else None,
                case_id=case_id if case_id is not None else newest.get(row.target or "")))
        return out

    async def resend(self, staff: StaffSession, case_id: int, failure_id: Any) -> bool:
        """Send a message a channel gave up on once more (True when it got through now)."""
        if not isinstance(failure_id, int) and not (isinstance(failure_id, str) and failure_id.isdigit()):
            raise BadRequest("failure id must be a number", code="invalid_failure", user_message="参数不对。")
        case = await self.visible_case(staff, case_id)
        self._require_handler(staff, case, ("claimed", "signoff"))
        async with self.db.session() as session:
            row = await session.get(AuditLog, int(failure_id))
        if (row is None or row.action != SEND_FAILED or row.target != case.conversation_key
                or aware(row.at) < aware(case.created_at)):  # type: ignore[operator]
            raise NotFound("no such failed message", user_message="没有这条发送失败的消息。")
        text = str((row.details or {}).get("text", ""))
        if not text:
            raise NotFound("the failed message has no text", user_message="这条消息没有内容，不能重发。")
        delivered = await self.services.outbox.push(case.conversation_key, [Reply(text)])
        await self.db.audit(staff.actor, "resend_message", target=f"case:{case_id}", failure=row.id,
                            delivered=delivered)
        await self.handoff.publish("staff_message", case_id=case_id, by=staff.username)
        return delivered

    async def audit_entries(self, staff: StaffSession, *, actor: str | None = None, decisions_only: bool = True,
                            offset: int = 0, limit: int = 50) -> tuple[list[AuditLog], int]:
        """Supervisors: decisions (and, on request, every action) from the audit log, newest first."""
        if not staff.is_supervisor:
            raise Forbidden("supervisors only", user_message="只有主管可以查看审计记录。")
        query = select(AuditLog)
        if decisions_only:
            query = query.where(AuditLog.action.in_(DECISION_ACTIONS))
        if actor:
            query = query.where(AuditLog.actor == f"staff:{actor}")
        async with self.db.session() as session:
            total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
            rows = list(await session.scalars(query.order_by(AuditLog.id.desc())
                                              .offset(max(0, offset)).limit(max(1, min(limit, 200)))))
        return rows, total

    async def note(self, staff: StaffSession, case_id: int, text: Any) -> CaseMessage:
        """An internal note; the user never sees it."""
        body = self._text(text, "note")
        case = await self.visible_case(staff, case_id)
        if case.status == "waiting" and not staff.is_supervisor:
            raise CaseConflict("claim the case first", user_message="请先认领这个案件。")
        async with self.db.session() as session:
            message = CaseMessage(case_id=case_id, author="note", staff_id=staff.staff_id, text=body)
            session.add(message)
        await self.db.audit(staff.actor, "case_note", target=f"case:{case_id}")
        await self.handoff.publish("case_note", case_id=case_id, by=staff.username)
        return message

    async def _close(self, case: Case, status_from: str, decision: str, note: str | None,
                     mode: str) -> None:
        """Close the case (conditionally) and put the chat back to ``mode``."""
        async with self.handoff.chat_lock(case.conversation_key):
            async with self.db.session() as session:
                result = await session.execute(
                    update(Case).where(Case.id == case.id, Case.status == status_from)
                    .values(status="closed", decision=decision, note=note or None,
                            closed_at=datetime.now(timezone.utc)))
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise CaseConflict(f"case {case.id} changed meanwhile",
                                       user_message="这个案件的状态已经变了，请刷新后再看。")
            conversations = self.handoff.conversations
            conv = await conversations.load(case.conversation_key)
            if conv.case_id in (case.id, None) and conv.mode in ("waiting", "human") or conv.is_new:
                conv.case_id = None
                conv.stack.clear()
                conv.misunderstood = 0
                conv.switch_mode(mode)
                if mode == "closed":
                    conv.memory["survey_case"] = case.id
                else:
                    conv.stack = [Frame(dialog="main_menu", state="choose")]
                await conversations.save(conv)
        if status_from == "waiting":
            await self.handoff.dequeue(case.id)

    async def resolve(self, staff: StaffSession, case_id: int, decision: Any, note: Any,
                      acknowledge_other_cases: bool = False) -> Case:
        """Decide the case: approved (certified by staff), rejected (reason sent), resolved.

        An approval needs a written reason. An approval against the face evidence (no passing
        selfie, a distance over the threshold, no face model) does not take effect: the case
        waits in ``signoff`` for another staff member who is a supervisor. Approving or
        rejecting while the same pensioner has other open or recently decided cases needs
        ``acknowledge_other_cases`` (409 ``other_cases`` otherwise)."""
        if decision not in DECISIONS:
            raise BadRequest(f"decision must be one of {DECISIONS}", code="invalid_decision",
                             user_message="处理结果不对。")
        note_text = self._note(note)
        if decision == "rejected" and not note_text:
            raise BadRequest("a rejection needs the reason", code="reason_required",
                             user_message="不通过时请写明原因，会发给用户。")
        case = await self.visible_case(staff, case_id)
        self._require_handler(staff, case)
        if decision == "approved" and case.pensioner_id is None:
            raise CaseConflict("no pensioner linked to this case",
                               user_message="这个案件没有关联退休人员，不能审核通过。")
        if decision == "approved" and not note_text:
            raise BadRequest("an approval needs a written reason", code="reason_required",
                             user_message="审核通过时请写明理由（例如：视频核实是本人）。")
        ctx = await self.context(staff, case_id) if decision in ("approved", "rejected") else None
        if ctx is not None and ctx.related and not acknowledge_other_cases:
            raise NeedsAcknowledgement(f"case {case_id}: other cases of the same pensioner", ctx.related)
        if decision == "approved" and ctx is not None and ctx.concerns:
            return await self._request_signoff(staff, case, note_text, ctx.concerns)
        await self._close(case, "claimed", decision, note_text, "closed")
        return await self._announce_decision(staff, case, decision, note_text)

    def _note(self, note: Any) -> str:
        if note is not None and not isinstance(note, str):
            raise BadRequest("note must be a string", code="invalid_note", user_message="备注格式不对。")
        note_text = (note or "").strip()
        if len(note_text) > self.services.settings.server.max_text_chars:
            raise BadRequest("note too long", code="note_too_long", user_message="备注太长了。")
        return note_text

    async def _request_signoff(self, staff: StaffSession, case: Case, note_text: str,
                               concerns: list[str]) -> Case:
        """claimed -> signoff: the approval waits for a supervisor (the user is told to wait)."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Case).where(Case.id == case.id, Case.status == "claimed")
                .values(status="signoff", note=note_text))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise CaseConflict(f"case {case.id} changed meanwhile",
                                   user_message="这个案件的状态已经变了，请刷新后再看。")
            session.add(CaseMessage(case_id=case.id, author="note", staff_id=staff.staff_id,
                                    text="申请审核通过，等待主管复核。理由：" + note_text
                                    + "\n与证据不符之处：" + "".join(concerns)))
        text = tr("工作人员正在复核您的材料，复核完会马上告诉您结果，请耐心等待。")
        async with self.db.session() as session:
            session.add(CaseMessage(case_id=case.id, author="bot", text=text))
        await self.services.outbox.push(case.conversation_key, [Reply(text)])
        await self.db.audit(staff.actor, "approval_requested", target=f"case:{case.id}", note=note_text,
                            concerns=concerns)
        await self.handoff.publish("case_signoff", case_id=case.id, by=staff.username)
        return await self.get_case(case.id)

    async def signoff(self, staff: StaffSession, case_id: int, approve: Any, note: Any) -> Case:
        """A supervisor (not the one who asked) confirms or declines a pending approval.

        Confirmed: the approval takes effect. Declined: the case is back with its handler."""
        if not staff.is_supervisor:
            raise Forbidden("supervisors only", user_message="只有主管可以复核。")
        if not isinstance(approve, bool):
            raise BadRequest("approve must be true or false", code="invalid_approve",
                             user_message="请选择同意或不同意。")
        note_text = self._note(note)
        ctx = await self.context(staff, case_id)
        case = ctx.case
        if case.status != "signoff":
            raise CaseConflict(f"case {case_id} is {case.status}", user_message="这个案件不在等待复核。")
        if ctx.requested_by == staff.actor:
            raise Forbidden("the requester cannot sign off", user_message="不能复核自己提出的申请，请另一位主管复核。")
        if not note_text:
            raise BadRequest("a sign-off needs a reason", code="reason_required",
                             user_message="请写明复核意见。")
        if not approve:
            async with self.db.session() as session:
                result = await session.execute(update(Case).where(Case.id == case_id, Case.status == "signoff")
                                               .values(status="claimed", note=None))
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise CaseConflict("case changed meanwhile")
                session.add(CaseMessage(case_id=case_id, author="note", staff_id=staff.staff_id,
                                        text="主管没有同意审核通过：" + note_text))
            await self.db.audit(staff.actor, "approval_declined", target=f"case:{case_id}",
                                requested_by=ctx.requested_by, note=note_text)
            await self.handoff.publish("case_signoff_declined", case_id=case_id, by=staff.username)
            return await self.get_case(case_id)
        reason = f"{case.note or ''}（主管 {staff.username} 复核同意：{note_text}）"
        await self._close(case, "signoff", "approved", reason, "closed")
        return await self._announce_decision(staff, case, "approved", reason,
                                             requested_by=ctx.requested_by, concerns=ctx.concerns)

    async def _announce_decision(self, staff: StaffSession, case: Case, decision: str, note_text: str,
                                 **audit: Any) -> Case:
        """After closing: certify (approved), tell the user, audit, notify consoles."""
        case_id = case.id
        replies: list[Reply] = []
        details: dict[str, Any] = {"decision": decision, "note": note_text[:500], **audit}
        if decision == "approved":
            assert case.pensioner_id is not None
            try:
                due = await self.services.registry.mark_certified(case.pensioner_id, by=staff.actor)
            except Exception:
                async with self.db.session() as session:  # undo: the case is still open
                    await session.execute(update(Case).where(Case.id == case_id).values(
                        status="claimed", decision=None, closed_at=None))
                raise
            details["next_due"] = due.isoformat()
            await self.services.events.record(
                Step.APPROVED, Chat(case.conversation_key, case.channel, proxy=bool(case.proxy)),
                pensioner_id=case.pensioner_id, case_id=case_id)
            replies.append(Reply(tr("好消息：工作人员已经人工审核通过，今年的养老待遇资格认证完成了。下次请在{due}前再认证。", due=due_text(due))))
        elif decision == "rejected":
            replies.append(Reply(tr("工作人员审核后，这次认证没有通过。原因：{note}\n"
                                    "您可以按上面说的重新办理，或带上身份证到社区、社保经办机构现场认证。",
                                    note=note_text)))
        else:
            replies.append(Reply(tr("工作人员已经处理完您的问题。")))
        replies.append(Reply(SURVEY_QUESTION, list(SURVEY_OPTIONS)))
        async with self.db.session() as session:
            for reply in replies:
                session.add(CaseMessage(case_id=case_id, author="bot", text=reply.as_plain_text()))
        await self.services.outbox.push(case.conversation_key, replies)
        await self.db.audit(staff.actor, f"case_{decision}", target=f"case:{case_id}",
                            pensioner=case.pensioner_id, **details)
        await self.handoff.publish("case_closed", case_id=case_id, decision=decision, by=staff.username)
        return await self.get_case(case_id)

    async def hand_back(self, staff: StaffSession, case_id: int) -> Case:
        """Give the chat back to the bot without a decision."""
        case = await self.visible_case(staff, case_id)
        if case.status == "waiting" and staff.is_supervisor:
            status_from = "waiting"
        else:
            self._require_handler(staff, case)
            status_from = "claimed"
        await self._close(case, status_from, "handed_back", None, "bot")
        text = tr("工作人员已经把对话交还给小助手。还有什么可以帮您？请回复数字选择：")
        async with self.db.session() as session:
            session.add(CaseMessage(case_id=case_id, author="bot", text=text))
        await self.services.outbox.push(case.conversation_key, [Reply(text, list(MENU_LABELS))])
        await self.db.audit(staff.actor, "hand_back", target=f"case:{case_id}")
        await self.handoff.publish("case_closed", case_id=case_id, decision="handed_back",
                                   by=staff.username)
        return await self.get_case(case_id)

    async def assign(self, staff: StaffSession, case_id: int, username: Any) -> Case:
        """Supervisor: give a waiting or claimed case to another staff member."""
        if not staff.is_supervisor:
            raise Forbidden("supervisors only", user_message="只有主管可以重新分配。")
        if not isinstance(username, str) or not username:
            raise BadRequest("username required", code="invalid_username", user_message="请选择工作人员。")
        async with self.db.session() as session:
            target = await session.scalar(select(StaffUser).where(StaffUser.username == username,
                                                                  StaffUser.active.is_(True)))
        if target is None:
            raise BadRequest("no such active staff member", code="unknown_user", status=404,
                             user_message="没有这个工作人员。")
        case = await self.get_case(case_id)
        if case.status == "waiting":
            await self._take(case, target.id)
            await self._greet(case_id, case.conversation_key, target.id)
        elif case.status in ("claimed", "signoff"):
            async with self.db.session() as session:
                result = await session.execute(update(Case).where(Case.id == case_id, Case.status == case.status)
                                               .values(assigned_to=target.id))
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise CaseConflict("case changed meanwhile")
        else:
            raise CaseConflict(f"case {case_id} is {case.status}", user_message="这个案件已经结束了。")
        await self.db.audit(staff.actor, "assign_case", target=f"case:{case_id}", to=target.username)
        await self.handoff.publish("case_assigned", case_id=case_id, to=target.username)
        return await self.get_case(case_id)

    async def pull(self, staff: StaffSession, conversation_key: Any) -> Case:
        """Take over a live chat from the recent list (a case with reason ``staff_pull``)."""
        if not isinstance(conversation_key, str) or not CONVERSATION_KEY_RE.match(conversation_key):
            raise BadRequest("conversation_key must look like channel:user", code="invalid_conversation",
                             user_message="对话标识不对。")
        conversations = self.handoff.conversations
        async with self.handoff.chat_lock(conversation_key):
            conv = await conversations.load(conversation_key)
            if conv.is_new:
                raise NotFound("no live conversation", user_message="这个对话已经结束了。")
            if conv.mode == "human":
                raise CaseConflict("a person already handles this chat", user_message="已经有工作人员在处理这个对话。")
            now = datetime.now(timezone.utc)
            async with self.db.session() as session:
                if conv.mode == "waiting" and conv.case_id:
                    result = await session.execute(
                        update(Case).where(Case.id == conv.case_id, Case.status == "waiting")
                        .values(status="claimed", assigned_to=staff.staff_id, claimed_at=now))
                    if result.rowcount != 1:  # type: ignore[attr-defined]
                        raise CaseConflict("case claimed meanwhile", user_message="这个案件已经被别人认领了。")
                    case_id = conv.case_id
                else:
                    case = Case(conversation_key=conversation_key, channel=conv.channel, user_id=conv.user_id,
                                reason="staff_pull", status="claimed", assigned_to=staff.staff_id,
                                claimed_at=now, pensioner_id=conv.memory.get("pensioner_id"),
                                transcript=list(conv.transcript), evidence={}, proxy={})
                    session.add(case)
                    await session.flush()
                    case_id = case.id
            conv.switch_mode(Mode.HUMAN)
            conv.case_id = case_id
            conv.stack.clear()
            await conversations.save(conv)
        await self.handoff.dequeue(case_id)
        await self._greet(case_id, conversation_key, staff.staff_id)
        await self.db.audit(staff.actor, "pull_chat", target=f"case:{case_id}")
        await self.handoff.publish("case_claimed", case_id=case_id, by=staff.username, pulled=True)
        return await self.get_case(case_id)


def _image_type(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"
