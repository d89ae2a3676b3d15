"""Canned responses (常用语): texts staff insert into replies, edited by supervisors.

Each has a ``shortcut``: typing ``/`` and the start of it in the reply box offers the
matching ones. The table is seeded by its migration with ``DEFAULTS``; every change is
audited.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.core.errors import BadRequest, BotError, Forbidden, NotFound
from bot.core.storage.db import Database
from bot.core.storage.models import CannedResponse
from bot.staff.auth import StaffSession

DEFAULTS = [
    ("问候", "您好，请问有什么可以帮您？"),
    ("核对", "请把身份证号码和姓名发给我核对一下。"),
    ("重拍", "请在光线明亮的地方，正对手机重新拍一张正脸照片发给我。"),
    ("稍等", "我们正在核实，请稍等几分钟。"),
    ("现场", "您也可以带上身份证到社区或社保经办机构现场办理。"),
]
MAX_TEXT = 500
SHORTCUT_RE = re.compile(r"^[^\s/]{1,16}$")


class DuplicateShortcut(BotError, status=409, code="duplicate_shortcut"):
    """Another canned response already uses this shortcut."""


def canned_json(row: CannedResponse) -> dict[str, Any]:
    return {"id": row.id, "shortcut": row.shortcut, "text": row.text}


class CannedResponses:
    """Reading for everyone, changes for supervisors."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self) -> list[CannedResponse]:
        async with self.db.session() as session:
            return list(await session.scalars(select(CannedResponse).order_by(CannedResponse.shortcut)))

    async def seed_defaults(self) -> int:
        """Add the defaults that are missing (by shortcut); how many were added."""
        have = {row.shortcut for row in await self.all()}
        missing = [(s, t) for s, t in DEFAULTS if s not in have]
        async with self.db.session() as session:
            session.add_all(CannedResponse(shortcut=s, text=t) for s, t in missing)
        return len(missing)

    @staticmethod
    def _check(shortcut: Any, text: Any) -> tuple[str, str]:
        if not isinstance(shortcut, str) or not isinstance(text, str):
            raise BadRequest("shortcut and text must be strings", code="invalid_canned",
                             user_message="请填写关键字和内容。")
        shortcut, text = shortcut.strip().lstrip("/"), text.strip()
        if not SHORTCUT_RE.match(shortcut):
            raise BadRequest("shortcut: 1-16 characters, no spaces or /", code="invalid_shortcut",
                             user_message="关键字要1到16个字，不能有空格或“/”。")
        if not text or len(text) > MAX_TEXT:
            raise BadRequest("text: 1-500 characters", code="invalid_text",
                             user_message=f"内容不能为空，也不能超过{MAX_TEXT}个字。")
        return shortcut, text

    @staticmethod
    def _supervisor(staff: StaffSession) -> None:
        if not staff.is_supervisor:
            raise Forbidden("supervisors only", user_message="只有主管可以修改常用语。")

    @staticmethod
    def _duplicate(shortcut: str) -> DuplicateShortcut:
        return DuplicateShortcut(f"shortcut {shortcut} exists", user_message=f"关键字“{shortcut}”已经有了，请换一个。")

    async def add(self, staff: StaffSession, shortcut: Any, text: Any) -> CannedResponse:
        self._supervisor(staff)
        shortcut, text = self._check(shortcut, text)
        row = CannedResponse(shortcut=shortcut, text=text, updated_by=staff.username)
        try:
            async with self.db.session() as session:
                session.add(row)
        except IntegrityError as exc:
            raise self._duplicate(shortcut) from exc
        await self.db.audit(staff.actor, "canned_add", target=f"canned:{row.id}", shortcut=shortcut)
        return row

    async def update(self, staff: StaffSession, canned_id: int, shortcut: Any, text: Any) -> CannedResponse:
        self._supervisor(staff)
        shortcut, text = self._check(shortcut, text)
        try:
            async with self.db.session() as session:
                row = await session.get(CannedResponse, canned_id)
                if row is None:
                    raise NotFound(f"canned {canned_id}", user_message="没有这条常用语。")
                row.shortcut, row.text = shortcut, text
                row.updated_by, row.updated_at = staff.username, datetime.now(timezone.utc)
        except IntegrityError as exc:
            raise self._duplicate(shortcut) from exc
        await self.db.audit(staff.actor, "canned_update", target=f"canned:{canned_id}", shortcut=shortcut)
        return row

    async def delete(self, staff: StaffSession, canned_id: int) -> None:
        self._supervisor(staff)
        async with self.db.session() as session:
            row = await session.get(CannedResponse, canned_id)
            if row is None:
                raise NotFound(f"canned {canned_id}", user_message="没有这条常用语。")
            shortcut = row.shortcut
            await session.delete(row)
        await self.db.audit(staff.actor, "canned_delete", target=f"canned:{canned_id}", shortcut=shortcut)
