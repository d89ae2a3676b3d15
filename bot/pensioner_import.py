"""Certifications recorded by staff elsewhere (a window, a home visit), imported from CSV.

``python -m bot pensioners import FILE.csv``; columns ``id_number, name, last_certified``
(YYYY-MM-DD) and optionally ``phone``. Every row is checked first; one bad row means
nothing is imported and every problem is listed with its line number. An imported
certification moves the pensioner's next due date and cancels reminders still pending
for the old one.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.core.errors import BotError
from bot.core.logs import mask_id_number
from bot.core.storage.db import Database
from bot.core.storage.models import AuditLog, Pensioner
from bot.records.pensioners import next_due_after
from bot.records.reminders import cancel_pending
from nlu.entities import id_checksum_ok

REQUIRED = ("id_number", "name", "last_certified")
OPTIONAL = ("phone",)
MAX_ROWS = 200_000
_NAME = re.compile(r"^[\u4e00-\u9fffA-Za-z·•. ]{2,20}$")
_PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")


class ImportRejected(BotError, status=400, code="import_rejected"):
    """The file has bad rows; nothing was imported."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} problem(s); nothing imported")
        self.errors = errors


@dataclass
class Row:
    line: int
    id_number: str
    name: str
    certified: date
    phone: str | None


def read_text(path: Path) -> str:
    """UTF-8 (with or without BOM), else GB18030 as Excel on Chinese Windows saves it."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return raw.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise ImportRejected(["文件编码无法识别：请另存为 UTF-8 编码的 CSV"]) from exc


def parse(text: str, today: date) -> list[Row]:
    """Check every row; raises ImportRejected listing each problem (line numbers as in the file)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [(name or "").strip() for name in (reader.fieldnames or [])]
    missing = [column for column in REQUIRED if column not in header]
    unknown = [column for column in header if column not in REQUIRED + OPTIONAL]
    if missing or unknown:
        header_problems = []
        if missing:
            header_problems.append(f"第1行（表头）：缺少列 {', '.join(missing)}")
        if unknown:
            header_problems.append(f"第1行（表头）：不认识的列 {', '.join(unknown)}"
                                   f"（只能有 {', '.join(REQUIRED + OPTIONAL)}）")
        raise ImportRejected(header_problems)
    reader.fieldnames = header
    errors: list[str] = []
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if len(rows) + len(errors) >= MAX_ROWS:
            errors.append(f"文件太大：最多 {MAX_ROWS} 行")
            break
        if None in record:
            errors.append(f"第{line}行：列数比表头多")
            continue
        values = {key: (value or "").strip() for key, value in record.items()}
        if not any(values.values()):
            continue  # a blank line
        problems: list[str] = []
        id_number = values["id_number"].upper()
        if not re.fullmatch(r"\d{17}[\dX]", id_number):
            problems.append("身份证号码要18位（最后一位可以是X）")
        elif not id_checksum_ok(id_number):
            problems.append(f"身份证号码 {mask_id_number(id_number)} 校验位不对，请核对")
        elif id_number in seen:
            problems.append(f"身份证号码 {mask_id_number(id_number)} 和第{seen[id_number]}行重复")
        name = values["name"]
        if not _NAME.match(name):
            problems.append("姓名为空或有不允许的字符")
        certified = _date(values["last_certified"])
        if certified is None:
            problems.append(f"认证日期“{values['last_certified'][:20]}”不对，要写成 2026-03-15 这样")
        elif certified > today:
            problems.append(f"认证日期 {certified.isoformat()} 在今天之后")
        elif certified.year < 2000:
            problems.append(f"认证日期 {certified.isoformat()} 太早了")
        phone = re.sub(r"[\s]", "", values.get("phone", "")) or None
        if phone is not None and not _PHONE.match(phone):
            problems.append("电话号码不对（手机11位，或带区号的座机）")
        if problems:
            errors.append(f"第{line}行：" + "；".join(problems))
            continue
        assert certified is not None
        seen[id_number] = line
        rows.append(Row(line, id_number, name, certified, phone))
    if errors:
        raise ImportRejected(errors)
    if not rows:
        raise ImportRejected(["文件里没有数据行"])
    return rows


def _date(value: str) -> date | None:
    match = _DATE.match(value)
    if match is None:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


async def import_rows(db: Database, rows: list[Row], *, source: str, timezone: str) -> dict[str, int]:
    """All rows in one transaction; a pensioner whose name differs from the registry's
    rejects the whole file."""
    zone = ZoneInfo(timezone)
    counts = {"imported": 0, "created": 0, "updated": 0, "unchanged": 0, "reminders_cancelled": 0}
    async with db.session() as session:
        existing = {p.id_number: p for p in await session.scalars(
            select(Pensioner).where(Pensioner.id_number.in_([r.id_number for r in rows])))}
        errors = [f"第{r.line}行：身份证号码 {mask_id_number(r.id_number)} 在系统里登记的姓名不是“{r.name}”，请核对"
                  for r in rows if r.id_number in existing
                  and "".join(existing[r.id_number].name.split()) != "".join(r.name.split())]
        if errors:
            raise ImportRejected(errors)
        for row in rows:
            at = datetime.combine(row.certified, time(12, 0), tzinfo=zone).astimezone(UTC)
            pensioner = existing.get(row.id_number)
            if pensioner is None:
                pensioner = Pensioner(id_number=row.id_number, name=row.name, phone=row.phone)
                session.add(pensioner)
                counts["created"] += 1
            elif row.phone:
                pensioner.phone = row.phone
            previous = pensioner.certified_at
            if previous is not None and previous.tzinfo is None:
                previous = previous.replace(tzinfo=UTC)
            if previous is not None and previous.astimezone(zone).date() >= row.certified:
                counts["unchanged"] += 1
                continue
            if pensioner in existing.values():
                counts["updated"] += 1
            pensioner.certified_at = at
            pensioner.certified_by = f"import:{source}"[:64]
            pensioner.next_due = next_due_after(at)
            pensioner.status = "active"
            await session.flush()
            counts["reminders_cancelled"] += await cancel_pending(session, pensioner.id, pensioner.next_due)
            counts["imported"] += 1
        session.add(AuditLog(actor="cli:pensioners", action="pensioners_imported", target=source[:160],
                             details=dict(counts, rows=len(rows))))
    return counts
