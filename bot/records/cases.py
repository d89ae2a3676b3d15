"""Escalation to a person: cases in the database, the live queue in Redis.

The queue is a sorted set ``handoff:queue`` (case id by creation time) shared by every
server process; staff consoles follow ``handoff:events`` (a Redis stream).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from sqlalchemy import bindparam, insert, select, update

from bot.core.config import Settings
from bot.core.conversation import (
    RECENT_KEEP_S,
    RECENT_KEY,
    Conversation,
    ConversationStore,
    Mode,
    chat_lock_key,
    mark_recent,
)
from bot.core.errors import BotError, RateLimited
from bot.core.facts import office_hours_text
from bot.core.i18n import tr
from bot.core.images import ImageRejected, decode
from bot.core.limits import check_chat_and_address
from bot.core.messages import Reply
from bot.core.storage.db import Database
from bot.core.storage.models import Case, CaseMessage
from bot.core.storage.redis import held_lock, redis_guard
from bot.records.events import CertificationEvents, Chat, Step

log = logging.getLogger(__name__)
QUEUE_KEY = "handoff:queue"
EVENTS_KEY = "handoff:events"
CASE_PHOTO_RE = re.compile(r"^[0-9a-f]{32}\.img$")
MAX_CASE_PHOTOS = 5      # photos a user may send to staff in one case
CASE_PHOTO_SIDE = 2048   # longest side kept (documents stay readable)
REASON_LABELS = {
    "user_request": tr("用户要求转人工"),
    "face_failed": tr("刷脸多次失败"),
    "appeal": tr("申诉/人工审核"),
    "info_mismatch": tr("信息不一致需更正"),
    "fallback": tr("多次没听懂"),
    "staff_pull": tr("工作人员接入"),
    "family": tr("代人认证需审核"),
    "photo_reused": tr("照片重复使用需复核"),
    "face_review": tr("刷脸结果需人工复核"),
    "attempts_alert": tr("同一老人今天刷脸失败次数过多，需核查"),
}
FEEDBACK_TEXT = {3: "解决了", 2: "部分解决", 1: "没解决"}  # the satisfaction answer, as staff read it
ACK_PREFIX = "handoff:ack:"  # set while the user has recently been told a person has the chat
CONFIRM_END = "confirm_end_case"  # conversation memory: 算了 asked "end the chat with staff?"
END_OPTIONS = [tr("结束对话"), tr("继续和工作人员说")]
# Built once (values come as parameters, so the compiled SQL is cached): the writes of a chat
# turn while someone waits for, or talks with, a person.
_INSERT_CASE = insert(Case).returning(Case.id)
_INSERT_MESSAGE = insert(CaseMessage.table())
_CANCEL_CASE = (update(Case).where(Case.id == bindparam("case_id"),
                                   Case.status.in_(("waiting", "claimed", "signoff")))
                .values(status="cancelled", closed_at=bindparam("closed_at")))
_END_YES = {"1", "结束对话", "结束", "结束吧", "是", "是的", "对", "好", "好的", "嗯", "确定", "不聊了",
            "算了", "取消", "不用了", "退出"}
_END_NO = {"2", "继续和工作人员说", "继续", "不", "不结束", "不用", "否", "不是", "再等等", "等等"}
_DAYS = {"Mon": 0, "Tue": 1, "Wed": 2, "Thu": 3, "Fri": 4, "Sat": 5, "Sun": 6}
WEEKDAY_NAMES = [tr("周一"), tr("周二"), tr("周三"), tr("周四"), tr("周五"), tr("周六"), tr("周日")]


class CaseConflict(BotError, status=409, code="conflict"):
    """The case is not in a state that allows this (e.g. someone else claimed it)."""

    user_message = tr("这个案件的状态已经变了，请刷新后再看。")


class CaseLimited(RateLimited, code="case_limited"):
    """This chat, or its client address, opened too many staff cases this hour."""

    user_message = (tr("您这一个小时里已经多次申请人工服务了，工作人员会按顺序处理已经提交的问题。"
                    "请过一段时间再申请；着急的话可以拨打人社服务热线12333。"))


def parse_office_hours(spec: str) -> tuple[set[int], tuple[int, int], tuple[int, int]]:
    """"Mon-Fri 09:00-17:30" -> (weekdays, (9, 0), (17, 30))."""
    days_part, hours_part = spec.split()
    first, _, last = days_part.partition("-")
    start_day, end_day = _DAYS[first], _DAYS[last or first]
    days = set(range(start_day, end_day + 1))
    opens, _, closes = hours_part.partition("-")
    oh, om = (int(x) for x in opens.split(":"))
    ch, cm = (int(x) for x in closes.split(":"))
    return days, (oh, om), (ch, cm)


class HandoffService:
    """Creates cases, tracks the queue and relays messages."""

    def __init__(self, settings: Settings, db: Database, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.office_days, self.opens, self.closes = parse_office_hours(settings.staff.office_hours)
        self.tz = ZoneInfo(settings.staff.timezone)
        self.events: CertificationEvents | None = None  # set by the assembly (Prometheus counts)

    def in_office_hours(self, now: datetime | None = None) -> bool:
        local = (now or datetime.now(timezone.utc)).astimezone(self.tz)
        minutes = local.hour * 60 + local.minute
        return (local.weekday() in self.office_days
                and self.opens[0] * 60 + self.opens[1] <= minutes < self.closes[0] * 60 + self.closes[1])

    def office_hours_text(self) -> str:
        staff = self.settings.staff
        return tr("人工服务时间：{office_hours_text}", office_hours_text=office_hours_text(staff.office_hours, staff.timezone))

    def next_opening(self, now: datetime | None = None) -> datetime:
        """When staff are next at work (local time); ``now`` itself during office hours."""
        now = (now or datetime.now(timezone.utc)).astimezone(self.tz)
        if self.in_office_hours(now):
            return now
        for days_ahead in range(0, 8):
            day = (now + timedelta(days=days_ahead)).date()
            opening = datetime(day.year, day.month, day.day, self.opens[0], self.opens[1], tzinfo=self.tz)
            if day.weekday() in self.office_days and opening > now:
                return opening
        return now  # no office days configured: say nothing wrong, just "soon"

    def back_text(self, now: datetime | None = None) -> str:
        """"工作人员 11月30日（周一）09:00 上班" for out-of-hours messages."""
        opening = self.next_opening(now)
        return (tr("工作人员{month}月{day}日（{weekday}）{opening}上班", month=opening.month, day=opening.day, weekday=WEEKDAY_NAMES[opening.weekday()], opening=opening.strftime("%H:%M")))

    @asynccontextmanager
    async def chat_lock(self, conversation_key: str) -> AsyncIterator[None]:
        """The pipeline's per-chat lock, so staff changes never interleave with a turn."""
        timeout = self.settings.conversation.user_lock_timeout_s
        async with held_lock(self.redis, chat_lock_key(conversation_key), timeout=timeout, sleep=0.01,
                             what="chat lock"):
            yield

    @property
    def conversations(self) -> ConversationStore:
        return ConversationStore(self.redis, self.settings.conversation.idle_timeout_s)

    @redis_guard
    async def touch(self, conversation_key: str) -> None:
        """Remember the chat in the live list staff may pull from (saving a conversation
        does this too, in the same round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            mark_recent(pipe, conversation_key)
            await pipe.execute()

    @redis_guard
    async def recent(self, limit: int = 50) -> list[tuple[str, float]]:
        """Recently active chats, newest first."""
        rows = await self.redis.zrevrangebyscore(RECENT_KEY, "+inf", time.time() - RECENT_KEEP_S,
                                                 start=0, num=limit, withscores=True)
        return [(key.decode() if isinstance(key, bytes) else str(key), float(score))
                for key, score in rows]

    async def sync_queue(self) -> int:
        """Rebuild the Redis queue from the database (after a Redis loss); returns its size."""
        cases = await self.waiting_cases()
        if cases:
            await self._zadd({str(c.id): c.created_at.timestamp() for c in cases})
        return len(cases)

    @redis_guard
    async def _zadd(self, members: dict[str, float]) -> None:
        await self.redis.zadd(QUEUE_KEY, members, nx=True)

    async def check_case_allowed(self, conversation_key: str, client_address: str | None) -> None:
        """Raise CaseLimited when the chat (``rate_limit.cases_per_chat_per_hour``) or its
        client address (``rate_limit.per_address.cases_per_hour``) opened enough cases."""
        limits = self.settings.rate_limit
        await check_chat_and_address(
            self.redis, "case", conversation_key, client_address, per_chat=limits.cases_per_chat_per_hour,
            per_address=limits.per_address.cases_per_hour, error=CaseLimited,
            details=("too many cases from this chat", "too many cases from this client address"))

    async def escalate(self, conversation: Conversation, reason: str, *,
                       pensioner_id: int | None = None, evidence: dict[str, Any] | None = None,
                       proxy: dict[str, Any] | None = None, client_address: str | None = None,
                       capped: bool = True) -> int:
        """Open a case (or reuse the open one) and put the chat in the waiting queue.

        A case the user asks for (``capped``) counts against the per-chat and per-address
        limits (CaseLimited, nothing opened). Cases the system opens on a face verdict pass
        ``capped=False``: the attempt limits bound them, and staff must see them.
        Dialogs that end in ``Handoff`` can leave what staff should see in the conversation
        memory: ``handoff_evidence`` (face attempts, quality codes, distances) and
        ``handoff_proxy`` (who acts for whom); both are moved into the case."""
        if conversation.case_id and conversation.mode in ("waiting", "human"):
            return conversation.case_id
        if capped:
            await self.check_case_allowed(conversation.key, client_address)
        if evidence is None:
            evidence = conversation.memory.pop("handoff_evidence", None)
        if proxy is None:
            proxy = conversation.memory.pop("handoff_proxy", None)
        pensioner_id = pensioner_id or conversation.memory.get("pensioner_id")
        async with self.db.autocommit() as connection:  # one INSERT: a unit of its own
            case_id = int((await connection.execute(_INSERT_CASE, {
                "conversation_key": conversation.key, "channel": conversation.channel,
                "user_id": conversation.user_id, "reason": reason, "status": "waiting",
                "language": conversation.language, "pensioner_id": pensioner_id,
                "transcript": list(conversation.transcript), "evidence": evidence or {},
                "proxy": proxy or {}})).scalar_one())
        conversation.switch_mode(Mode.WAITING)
        conversation.case_id = case_id
        await self._enqueue(case_id, reason)
        if self.events is not None:
            prefecture = await self.events.prefecture_for(pensioner_id=pensioner_id)
            self.events.case_opened(conversation.channel, prefecture)
        return case_id

    @redis_guard
    async def _enqueue(self, case_id: int, reason: str) -> None:
        """Into the waiting queue and onto the staff's event stream, in one round trip."""
        now = datetime.now(timezone.utc).timestamp()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(QUEUE_KEY, {str(case_id): now})
            self._publish_on(pipe, "case_waiting", case_id=case_id, reason=reason)
            await pipe.execute()

    @redis_guard
    async def publish(self, kind: str, **data: Any) -> None:
        await self._publish_on(self.redis, kind, **data)

    @staticmethod
    def _publish_on(redis: Any, kind: str, **data: Any) -> Any:
        """XADD one staff event on ``redis`` (the client, or a pipeline)."""
        return redis.xadd(EVENTS_KEY, {"kind": kind, "data": json.dumps(data, ensure_ascii=False)},
                          maxlen=10000, approximate=True)

    @redis_guard
    async def position(self, case_id: int) -> int | None:
        rank = await self.redis.zrank(QUEUE_KEY, str(case_id))
        return None if rank is None else int(rank) + 1

    @redis_guard
    async def dequeue(self, case_id: int) -> None:
        await self.redis.zrem(QUEUE_KEY, str(case_id))

    @redis_guard
    async def _dequeue_cancelled(self, case_id: int) -> None:
        """Out of the waiting queue, and tell the staff, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(QUEUE_KEY, str(case_id))
            self._publish_on(pipe, "case_cancelled", case_id=case_id)
            await pipe.execute()

    async def cancel(self, conversation: Conversation, note: str | None = None) -> None:
        """The user gave up waiting (or ended the chat with staff): close the case, back to the bot."""
        case_id = conversation.case_id
        if case_id is not None:
            closing = {"case_id": case_id, "closed_at": datetime.now(timezone.utc)}
            if note:
                async with self.db.session() as session:  # both or neither
                    await session.execute(_CANCEL_CASE, closing)
                    await session.execute(_INSERT_MESSAGE, {"case_id": case_id, "author": "bot", "text": note})
            else:
                async with self.db.autocommit() as connection:
                    await connection.execute(_CANCEL_CASE, closing)
            await self._dequeue_cancelled(case_id)
        conversation.memory.pop(CONFIRM_END, None)
        conversation.switch_mode(Mode.BOT)
        conversation.case_id = None

    async def record_user_message(self, conversation: Conversation, text: str,
                                  image: bytes | None = None) -> None:
        """Store a message the user sent while a person is involved and notify staff.

        A photo is kept under ``data_dir/case_photos/<case>/`` (served to staff only while
        ``face.photo_retention_days`` allows) and the message says ``[照片 <file>]``."""
        if conversation.case_id is None:
            return
        parts = [text] if text else []
        if image is not None and self.settings.face.photo_retention_days > 0:
            name = await asyncio.to_thread(self._save_case_photo, conversation.case_id, image)
            parts.append(tr("[照片 {name}]", name=name) if name else tr("[照片无法使用，未保存]"))
        elif image is not None:
            parts.append(tr("[照片，按规定不保存]"))
        if not parts:
            return  # a platform event (subscribe, menu click): nothing for staff to read
        async with self.db.autocommit() as connection:
            await connection.execute(_INSERT_MESSAGE, {"case_id": conversation.case_id, "author": "user",
                                                       "text": "\n".join(parts)})
        await self.publish("user_message", case_id=conversation.case_id)

    def case_photo_dir(self, case_id: int) -> Path:
        return (self.settings.storage.data_dir / "case_photos" / str(case_id)).resolve()

    def _save_case_photo(self, case_id: int, image: bytes) -> str | None:
        """Decode and check the photo like a selfie (type, bytes, pixels), re-encode it as a
        JPEG without EXIF and store it 0600; at most MAX_CASE_PHOTOS per case. None when
        the photo was not kept."""
        folder = self.case_photo_dir(case_id)
        if folder.is_dir() and len(list(folder.glob("*.img"))) >= MAX_CASE_PHOTOS:
            log.warning("case photo refused: the case has enough photos", extra={"case": case_id})
            return None
        face = self.settings.face
        try:
            pixels = decode(image, max_bytes=face.max_image_bytes, max_pixels=face.max_image_pixels,
                            max_side=CASE_PHOTO_SIDE)
        except ImageRejected as exc:
            log.warning("case photo refused: %s", exc.code, extra={"case": case_id})
            return None
        from PIL import Image  # deferred: Pillow only when a photo is shown

        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)  # no EXIF, no metadata
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{uuid.uuid4().hex}.img"
        fd = os.open(folder / name, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(buffer.getvalue())
        return name

    def case_photo(self, case_id: int, name: str) -> bytes | None:
        """A photo a user sent to staff, while retention allows (else None)."""
        if not CASE_PHOTO_RE.match(name):
            return None
        path = self.case_photo_dir(case_id) / name
        if not path.is_file():
            return None
        age_s = time.time() - path.stat().st_mtime
        if age_s > self.settings.face.photo_retention_days * 86400:
            return None
        return path.read_bytes()

    async def record_feedback(self, case_id: int, score: int, *, channel: str,
                              conversation_key: str) -> None:
        """The user's answer to "这次帮到您了吗？" after staff closed the case (3 = helped,
        2 = partly, 1 = not): a case message for staff and a satisfaction event."""
        async with self.db.session() as session:
            session.add(CaseMessage(case_id=case_id, author="feedback", text=FEEDBACK_TEXT[score]))
            pensioner_id = await session.scalar(select(Case.pensioner_id).where(Case.id == case_id))
        if self.events is not None:
            await self.events.record(Step.SATISFACTION, Chat(conversation_key, channel),
                                     pensioner_id=pensioner_id, case_id=case_id, value=float(score))
        await self.publish("feedback", case_id=case_id, resolved=score == 3, score=score)

    async def waiting_cases(self) -> list[Case]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(Case).where(Case.status == "waiting").order_by(Case.created_at))
            return list(rows)

    def expected_wait_minutes(self, position: int) -> int:
        return max(1, position * 3)

    def queue_text(self, position: int | None, *, first: bool = False, now: datetime | None = None) -> str:
        """Where the user stands in the queue; a minute estimate only while staff are at work."""
        open_now = self.in_office_hours(now)
        text = tr("好的，已经为您转接人工服务") if first else tr("您已在排队等人工服务")
        if position == 1:
            text += tr("，您前面没有人在等")  # not "前面还有 0 位"
        elif position:
            text += tr("，您前面还有 {ahead} 位", ahead=position - 1) if first else tr("，前面还有 {ahead} 位", ahead=position - 1)
        if position and open_now:
            text += tr("，大约等 {minutes} 分钟", minutes=self.expected_wait_minutes(position))
        text += tr("。")  # a full stop in Chinese; Tibetan phrases end in their own shad
        if not open_now:
            text += (tr("现在不是工作时间（{office_hours_text}），{back_text}后会第一时间回复您，您的问题会一直保留。", office_hours_text=self.office_hours_text(), back_text=self.back_text(now)))
        if first:
            return text + tr("等待时您可以继续留言；不想等了请回复“算了”。")
        return text + tr("不想等了请回复“算了”。")

    @redis_guard
    async def note_staff_spoke(self, conversation_key: str) -> None:
        """Staff just wrote to the user: no automatic acknowledgement for a while."""
        await self.redis.set(ACK_PREFIX + conversation_key, "1", ex=self.settings.staff.ack_interval_s)

    @redis_guard
    async def _ack_due(self, conversation_key: str) -> bool:
        """True at most once per ``staff.ack_interval_s`` (and not right after staff wrote)."""
        return bool(await self.redis.set(ACK_PREFIX + conversation_key, "1", nx=True,
                                         ex=self.settings.staff.ack_interval_s))

    async def staffed_turn(self, conversation: Conversation, text: str,
                           image: bytes | None = None, *, command: str | None = None,
                           menu: list[str] | None = None) -> tuple[list[Reply], str]:
        """A message while the chat waits for or is with a person: (replies, outcome).

        The user is never left without an answer to a command, and an ordinary message gets a
        short acknowledgement at most once per ``staff.ack_interval_s``. ``command`` is the
        global command the message is (the handlers match it), ``menu`` the main menu's labels."""
        menu = list(menu or [])
        if conversation.mode == "waiting":
            if command == "cmd_cancel":
                await self.cancel(conversation)
                return [Reply(tr("好的，已经取消排队。还有什么可以帮您？"), menu)], "handoff_cancelled"
            if text or image is not None:
                await self.record_user_message(conversation, text, image=image)
            position = await self.position(conversation.case_id) if conversation.case_id else None
            if command == "human_handoff":
                return [Reply(tr("您已经在排队等人工服务了，不用再发“转人工”。") + self.queue_text(position))], "waiting"
            if command in ("cmd_restart", "cmd_back"):
                return [Reply(tr("您正在排队等人工服务。要回到小助手的菜单，请先回复“算了”取消排队。"))], "waiting"
            if not (text or image is not None):
                return [], "waiting"
            if await self._ack_due(conversation.key):
                return [Reply(self.queue_text(position))], "waiting"
            return [Reply(tr("收到，已经记下了，工作人员接手后会看到。"))], "waiting"
        # human: a person handles the chat
        await self.record_user_message(conversation, text, image=image)
        if conversation.memory.get(CONFIRM_END) == conversation.case_id:
            answer = text.strip().strip("。！!.，, ") if text else ""
            if answer in _END_YES:
                await self.cancel(conversation, note=tr("用户结束了和工作人员的对话。"))
                conversation.switch_mode(Mode.BOT)
                return [Reply(tr("好的，已经结束和工作人员的对话。还有什么可以帮您？请回复数字选择："), menu)], \
                    "handoff_ended_by_user"
            conversation.memory.pop(CONFIRM_END, None)
            if answer in _END_NO:
                return [Reply(tr("好的，请继续说，工作人员会看到您的消息。"))], "relayed"
        if command == "cmd_cancel":
            conversation.memory[CONFIRM_END] = conversation.case_id
            return [Reply(tr("您现在正在和工作人员对话。要结束这次人工对话吗？请回复数字："), END_OPTIONS)], \
                "confirm_end"
        if command == "human_handoff":
            return [Reply(tr("您现在就是在和工作人员对话，直接把问题发过来就行，工作人员会尽快回复您。"))], "relayed"
        if command in ("cmd_restart", "cmd_back"):
            return [Reply(tr("您现在正在和工作人员对话。要回到小助手的菜单，请先回复“算了”结束人工对话。"))], "relayed"
        if not (text or image is not None) or not await self._ack_due(conversation.key):
            return [], "relayed"
        ack = tr("已经转给工作人员了，请稍等回复。")
        if not self.in_office_hours():
            ack = (tr("已经转给工作人员了。现在不是工作时间（{office_hours_text}），{back_text}后会回复您。", office_hours_text=self.office_hours_text(), back_text=self.back_text()))
        return [Reply(ack)], "relayed"




def purge_case_photos(data_dir: Path, retention_days: int, now: float | None = None) -> int:
    """Delete photos users sent to staff once they are past retention. Returns the count."""
    root = data_dir / "case_photos"
    if not root.is_dir():
        return 0
    cutoff = (now if now is not None else time.time()) - retention_days * 86400
    removed = 0
    for path in root.glob("*/*.img"):
        if path.stat().st_mtime <= cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
