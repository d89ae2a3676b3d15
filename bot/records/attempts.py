"""Durable face records: enrolment templates, attempts, photos within retention, audit.

Photos are kept only as files under ``<data_dir>/faces/`` and only for
``face.photo_retention_days`` (0: never stored). They are re-encoded from the decoded
image, so EXIF data (GPS, device) is not kept. :func:`cleanup_expired` deletes expired
files and forgets their paths; the worker runs it periodically.
"""

from __future__ import annotations

import io
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import redis.asyncio as aioredis
from numpy.typing import NDArray
from sqlalchemy import func, or_, select

from bot.core.logs import mask_id_number
from bot.core.storage.db import Database
from bot.core.storage.models import CertificationAttempt, FaceTemplate, Pensioner
from bot.core.storage.redis import redis_guard

log = logging.getLogger(__name__)


class PhotoStore:
    """Photo files under ``root`` with an expiry date."""

    def __init__(self, root: Path, retention_days: int) -> None:
        self.root = root.resolve()
        self.retention_days = retention_days

    @property
    def enabled(self) -> bool:
        return self.retention_days > 0

    def save(self, kind: str, image: NDArray[np.uint8] | None,
             now: datetime | None = None) -> tuple[str | None, datetime | None]:
        """Write the image as JPEG; returns (path relative to root, expiry) or (None, None)."""
        if not self.enabled or image is None:
            return None, None
        from PIL import Image  # deferred: Pillow only when a photo is kept

        now = now or datetime.now(UTC)
        relative = Path(kind) / now.strftime("%Y-%m-%d") / f"{uuid.uuid4().hex}.jpg"
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=88)
        target.write_bytes(buffer.getvalue())
        target.chmod(0o600)
        return str(relative), now + timedelta(days=self.retention_days)

    def path(self, relative: str) -> Path:
        resolved = (self.root / relative).resolve()
        if self.root not in resolved.parents:
            raise ValueError("photo path outside the photo store")
        return resolved

    def delete(self, relative: str) -> None:
        try:
            self.path(relative).unlink(missing_ok=True)
        except (OSError, ValueError) as exc:
            log.warning("could not delete photo: %s", exc.__class__.__name__)


def photo_store(settings: Any) -> PhotoStore:
    return PhotoStore(settings.storage.data_dir / "faces", settings.face.photo_retention_days)


# ---------------------------------------------------------------- templates


async def get_template(db: Database, pensioner_id: int) -> FaceTemplate | None:
    async with db.session() as session:
        return await session.scalar(select(FaceTemplate).where(FaceTemplate.pensioner_id == pensioner_id))


async def save_template(db: Database, pensioner_id: int, embedding: list[float], model: str,
                        photo_path: str | None, photo_expires_at: datetime | None
                        ) -> tuple[FaceTemplate, str | None]:
    """Create or replace the pensioner's reference embedding (re-enrolment replaces it).

    Returns the template and the path of a replaced reference photo (to delete)."""
    async with db.session() as session:
        template = await session.scalar(
            select(FaceTemplate).where(FaceTemplate.pensioner_id == pensioner_id))
        old_photo = template.photo_path if template is not None else None
        if template is None:
            template = FaceTemplate(pensioner_id=pensioner_id, model=model, embedding=embedding)
            session.add(template)
        template.model = model
        template.embedding = list(embedding)
        template.photo_path = photo_path
        template.photo_expires_at = photo_expires_at
        template.created_at = datetime.now(UTC)
        await session.flush()
    return template, (old_photo if old_photo and old_photo != photo_path else None)


# ---------------------------------------------------------------- attempts


@dataclass
class AttemptRecord:
    """What the worker decided about one selfie."""

    pensioner_id: int | None
    channel: str
    chat_user: str
    proxy: bool
    relationship: str | None
    quality_codes: list[str]
    distance: float | None
    threshold: float | None
    decision: str  # passed | failed | rejected | flagged (a reused photo, not accepted)
    photo_path: str | None = None
    photo_hash: str | None = None
    photo_expires_at: datetime | None = None
    details: dict[str, Any] | None = None  # liveness evidence (issue 21)


# Decisions that are not a failed attempt: "matched" (the frontal photo matched, the pose
# challenge was asked) and "review" (sent to a person, who decides).
NOT_FAILED = ("passed", "matched", "review")


async def record_attempt(db: Database, record: AttemptRecord, *, id_number: str | None = None,
                         request_id: str | None = None) -> int:
    """Store the attempt and its audit line (no photo, ID number masked)."""
    async with db.session() as session:
        attempt = CertificationAttempt(
            pensioner_id=record.pensioner_id, channel=record.channel, chat_user=record.chat_user,
            proxy=record.proxy, relationship=record.relationship,
            quality_codes=list(record.quality_codes), distance=record.distance,
            threshold=record.threshold, decision=record.decision, photo_path=record.photo_path,
            photo_hash=record.photo_hash, photo_expires_at=record.photo_expires_at,
            details=record.details)
        session.add(attempt)
        await session.flush()
        attempt_id = attempt.id
    await db.audit(
        f"face:{record.channel}", "face_attempt",
        target=f"pensioner:{record.pensioner_id}" if record.pensioner_id else None,
        attempt_id=attempt_id, channel=record.channel, proxy=record.proxy,
        relationship=record.relationship, quality_codes=list(record.quality_codes),
        distance=record.distance, threshold=record.threshold, decision=record.decision,
        id_number=mask_id_number(id_number) if id_number else None, request_id=request_id,
        proxy_key=f"{record.channel}:{record.chat_user}" if record.proxy else None,
        **_audit_liveness(record.details))
    return attempt_id


def _audit_liveness(details: dict[str, Any] | None) -> dict[str, Any]:
    """The liveness facts worth an audit line (no embedding, no landmarks)."""
    if not details:
        return {}
    keys = ("stage", "challenge", "challenge_result", "band", "replay_signals")
    return {k: details[k] for k in keys if details.get(k) is not None}


# A re-encoded, resized or recompressed copy of a photo stays within a few bits of its
# 64-bit dHash (0-3 on ../shared/faces); different photos are 19+ bits apart there.
REUSE_MAX_BITS = 6
_BANDS = 8  # 8 bands of 8 bits: any hash within 7 bits shares at least one band exactly


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes of equal length."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


async def find_reused_photo(db: Database, photo_hash: str | None, pensioner_id: int,
                            exclude_attempt: int | None = None) -> CertificationAttempt | None:
    """An earlier attempt with (perceptually) the same photo that makes this one suspect.

    Suspect: the same photo already *passed* a verification or matched as the frontal photo
    of a pose challenge (a replayed selfie), or it was
    sent for a *different* pensioner. Re-sending a photo that failed for the same pensioner
    is a harmless retry (it fails again) and is not flagged.
    """
    if not photo_hash or len(photo_hash) != 16:
        return None
    width = 16 // _BANDS
    bands = [func.substr(CertificationAttempt.photo_hash, i * width + 1, width)
             == photo_hash[i * width:(i + 1) * width] for i in range(_BANDS)]
    query = (select(CertificationAttempt)
             .where(CertificationAttempt.photo_hash.is_not(None), or_(*bands),
                    or_(CertificationAttempt.decision.in_(("passed", "matched")),
                        CertificationAttempt.pensioner_id != pensioner_id))
             .order_by(CertificationAttempt.created_at))
    if exclude_attempt is not None:
        query = query.where(CertificationAttempt.id != exclude_attempt)
    async with db.session() as session:
        for row in await session.scalars(query):
            if row.photo_hash and hamming(row.photo_hash, photo_hash) <= REUSE_MAX_BITS:
                return row
    return None


def day_start(tz_name: str, now: datetime | None = None) -> datetime:
    """Midnight of today in the agency's time zone, as an aware UTC datetime."""
    local = (now or datetime.now(UTC)).astimezone(ZoneInfo(tz_name))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


@dataclass
class FailedToday:
    """Failed attempts for one pensioner since a time: of one chat, and of all chats."""

    mine: int      # from this chat (channel and chat user)
    everyone: int  # from every chat and channel together
    chats: int     # how many different chats failed


async def failed_attempts_by_chat(db: Database, pensioner_id: int, since: datetime, channel: str,
                                  chat_user: str) -> FailedToday:
    """Failed attempts since ``since``: the daily limit is per (chat, pensioner), so that
    someone who knows an ID number and name cannot use up the pensioner's own attempts;
    the count of all chats feeds a higher cap per pensioner."""
    async with db.session() as session:
        rows = (await session.execute(
            select(CertificationAttempt.channel, CertificationAttempt.chat_user,
                   func.count(CertificationAttempt.id))
            .where(CertificationAttempt.pensioner_id == pensioner_id,
                   CertificationAttempt.decision.not_in(NOT_FAILED),
                   CertificationAttempt.created_at >= since)
            .group_by(CertificationAttempt.channel, CertificationAttempt.chat_user))).all()
    mine = sum(int(n) for ch, user, n in rows if ch == channel and user == chat_user)
    return FailedToday(mine=mine, everyone=sum(int(n) for _, _, n in rows), chats=len(rows))


@redis_guard
async def claim_cap_alert(redis: aioredis.Redis, pensioner_id: int, day: datetime) -> bool:
    """True for the first caller of the day that found the pensioner's cap reached (that one
    alerts staff); False for every later one."""
    key = f"face:cap_alert:{pensioner_id}:{int(day.timestamp())}"
    return bool(await redis.set(key, "1", nx=True, ex=2 * 86400))


async def evidence(db: Database, pensioner_id: int, since: datetime) -> dict[str, Any]:
    """The face evidence for a manual review: codes, distances, photos within retention."""
    now = datetime.now(UTC)
    async with db.session() as session:
        rows = list(await session.scalars(
            select(CertificationAttempt).where(CertificationAttempt.pensioner_id == pensioner_id,
                                               CertificationAttempt.created_at >= since)
            .order_by(CertificationAttempt.created_at)))
        template = await session.scalar(
            select(FaceTemplate).where(FaceTemplate.pensioner_id == pensioner_id))
    attempts = []
    for row in rows:
        expires = _aware(row.photo_expires_at)
        attempts.append({
            "attempt_id": row.id, "at": row.created_at.isoformat() if row.created_at else None,
            "channel": row.channel, "proxy": row.proxy, "relationship": row.relationship,
            "decision": row.decision, "quality_codes": list(row.quality_codes or []),
            "distance": row.distance, "threshold": row.threshold,
            "photo": row.photo_path if row.photo_path and expires and expires > now else None,
            "photo_hash": row.photo_hash,
            **_liveness_evidence(row.details),
        })
    reference = None
    if template is not None and template.photo_path:
        expires = _aware(template.photo_expires_at)
        reference = template.photo_path if expires and expires > now else None
    return {"pensioner_id": pensioner_id, "attempts": attempts, "reference_photo": reference}


def _liveness_evidence(details: dict[str, Any] | None) -> dict[str, Any]:
    """The challenge asked, the pose measured, both distances, replay signals."""
    if not details:
        return {}
    keys = ("stage", "challenge", "challenge_result", "pose", "distance_template",
            "distance_pair", "band", "replay_signals", "replay", "checks")
    return {k: details[k] for k in keys if k in details}


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def cleanup_expired(db: Database, photos: PhotoStore, now: datetime | None = None) -> int:
    """Delete photo files past their retention and forget their paths. Returns the count."""
    now = now or datetime.now(UTC)
    removed = 0
    async with db.session() as session:
        attempts = await session.scalars(select(CertificationAttempt).where(
            CertificationAttempt.photo_path.is_not(None), CertificationAttempt.photo_expires_at <= now))
        templates = await session.scalars(select(FaceTemplate).where(
            FaceTemplate.photo_path.is_not(None), FaceTemplate.photo_expires_at <= now))
        rows: list[CertificationAttempt | FaceTemplate] = [*attempts, *templates]
        for row in rows:
            if row.photo_path:
                photos.delete(row.photo_path)
            row.photo_path = None
            removed += 1
    if removed:
        log.info("deleted expired face photos", extra={"count": removed})
    return removed


async def pensioner_by_id_number(db: Database, id_number: str) -> Pensioner | None:
    async with db.session() as session:
        return await session.scalar(select(Pensioner).where(Pensioner.id_number == id_number))
