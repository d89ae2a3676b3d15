"""Enrolment (建模): a pensioner's reference embedding, computed once from a good photo."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy import select

from bot.core.i18n import tr
from bot.core.logs import mask_id_number
from bot.core.storage.db import Database
from bot.core.storage.models import Pensioner
from bot.records.attempts import PhotoStore, save_template
from bot.records.pensioners import names_match
from face.engine import MODEL_NAME, FaceEngine
from face.quality import advice_for


@dataclass
class EnrolResult:
    ok: bool
    pensioner_id: int | None = None
    issues: list[str] = field(default_factory=list)
    advice: str = ""
    created: bool = False
    replaced: bool = False


async def enrol(db: Database, engine: FaceEngine, photos: PhotoStore, id_number: str, name: str,
                photo: bytes, *, actor: str = "cli") -> EnrolResult:
    """Register the pensioner if new and store the reference embedding of ``photo``.

    The photo must pass the same quality gate as a selfie. An existing pensioner must have
    the same name (``name_mismatch`` otherwise; nothing is changed).
    """
    analysis = await asyncio.to_thread(engine.analyse, photo)
    if not analysis.ok or analysis.embedding is None:
        return EnrolResult(False, issues=analysis.issues, advice=advice_for(analysis.issues))
    async with db.session() as session:
        pensioner = await session.scalar(select(Pensioner).where(Pensioner.id_number == id_number))
        created = pensioner is None
        if pensioner is None:
            pensioner = Pensioner(id_number=id_number, name=name)
            session.add(pensioner)
            await session.flush()
        elif not names_match(name, pensioner.name):
            return EnrolResult(False, issues=["name_mismatch"],
                               advice=tr("姓名和登记的信息不一致，没有建模。"))
        pensioner_id = pensioner.id
    photo_path, expires = photos.save("enrolment", analysis.image)
    _, replaced_photo = await save_template(db, pensioner_id, analysis.embedding, MODEL_NAME,
                                            photo_path, expires)
    if replaced_photo:
        photos.delete(replaced_photo)
    await db.audit(actor, "face_enrolled", target=f"pensioner:{pensioner_id}",
                   id_number=mask_id_number(id_number), created=created)
    return EnrolResult(True, pensioner_id=pensioner_id, created=created, replaced=not created)
