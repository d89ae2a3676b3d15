"""Proxy links: which chat identity certifies on behalf of which pensioner (代他人认证).

A link is made for one calendar year (in the agency's time zone) when the family member
confirms the pensioner's consent; it records the consent time and channel and whether the
family member wants a reminder. Removal marks a link removed, it is never deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.core.logs import mask_name
from bot.core.storage.db import Database
from bot.core.storage.models import CertificationAttempt, Pensioner, ProxyLink


def local_year(tz: ZoneInfo, now: datetime | None = None) -> int:
    """The calendar year in the agency's time zone."""
    return (now or datetime.now(UTC)).astimezone(tz).year


def _year_start(tz: ZoneInfo, year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=tz).astimezone(UTC)


async def acting_for(db: Database, tz: ZoneInfo, proxy_key: str, year: int) -> set[int]:
    """Pensioners this chat identity acts for this year: linked and not removed, or
    removed after it already sent a selfie for them (removal does not free the slot)."""
    channel, _, user_id = proxy_key.partition(":")
    async with db.session() as session:
        linked = set(await session.scalars(
            select(ProxyLink.pensioner_id).where(ProxyLink.proxy_key == proxy_key,
                                                 ProxyLink.year == year,
                                                 ProxyLink.removed_at.is_(None))))
        acted = set(await session.scalars(
            select(CertificationAttempt.pensioner_id).where(
                CertificationAttempt.proxy.is_(True), CertificationAttempt.channel == channel,
                CertificationAttempt.chat_user == user_id,
                CertificationAttempt.created_at >= _year_start(tz, year))))
    return {int(p) for p in linked | acted if p is not None}


async def link_pensioner(db: Database, tz: ZoneInfo, proxy_key: str, pensioner_id: int,
                         relationship: str, channel: str, now: datetime) -> int:
    """Record (or refresh) this year's link with the consent time and channel; its id."""
    year = local_year(tz, now)
    async with db.session() as session:
        link = await session.scalar(
            select(ProxyLink).where(ProxyLink.proxy_key == proxy_key,
                                    ProxyLink.pensioner_id == pensioner_id,
                                    ProxyLink.year == year, ProxyLink.removed_at.is_(None)))
        if link is None:
            link = ProxyLink(proxy_key=proxy_key, pensioner_id=pensioner_id, year=year,
                             relationship=relationship, reminder_opt_in=False)
            session.add(link)
        link.relationship = relationship
        link.consent_at = now
        link.consent_channel = channel
        await session.flush()
        return int(link.id)


async def latest_link_id(db: Database, proxy_key: str, pensioner_id: int) -> int | None:
    """The newest active link of this identity with this pensioner, if any."""
    async with db.session() as session:
        link_id = await session.scalar(
            select(ProxyLink.id).where(ProxyLink.proxy_key == proxy_key,
                                       ProxyLink.pensioner_id == pensioner_id,
                                       ProxyLink.removed_at.is_(None))
            .order_by(ProxyLink.id.desc()))
    return None if link_id is None else int(link_id)


async def linked_pensioners(db: Database, proxy_key: str) -> list[tuple[int, str, str]]:
    """(pensioner id, masked name, relationship) of the active links, oldest first."""
    async with db.session() as session:
        rows = (await session.execute(
            select(ProxyLink.pensioner_id, Pensioner.name, ProxyLink.relationship)
            .join(Pensioner, Pensioner.id == ProxyLink.pensioner_id)
            .where(ProxyLink.proxy_key == proxy_key, ProxyLink.removed_at.is_(None))
            .order_by(ProxyLink.created_at, ProxyLink.id))).all()
    seen: dict[int, tuple[int, str, str]] = {}
    for pensioner_id, name, relationship in rows:
        seen.setdefault(int(pensioner_id), (int(pensioner_id), mask_name(name), relationship))
    return list(seen.values())


async def remove_link(db: Database, proxy_key: str, pensioner_id: int) -> int:
    """Mark every active link of this identity with this pensioner removed; the count."""
    now = datetime.now(UTC)
    async with db.session() as session:
        links = list(await session.scalars(
            select(ProxyLink).where(ProxyLink.proxy_key == proxy_key,
                                    ProxyLink.pensioner_id == pensioner_id,
                                    ProxyLink.removed_at.is_(None))))
        for link in links:
            link.removed_at = now
        return len(links)


async def set_reminder(db: Database, link_id: int, opt_in: bool) -> None:
    """Whether the family member wants a reminder before the pensioner's next due date."""
    async with db.session() as session:
        link = await session.get(ProxyLink, link_id)
        if link is not None:
            link.reminder_opt_in = opt_in
