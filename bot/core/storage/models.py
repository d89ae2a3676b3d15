"""Durable records (SQLAlchemy 2). Changes go through Alembic migrations in ``migrations/``."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}

    @classmethod
    def table(cls) -> Table:
        """The model's table, for a plain Core INSERT of a row nobody reads back (no unit of work)."""
        table = cls.__table__
        assert isinstance(table, Table)
        return table


class Pensioner(Base):
    """A retiree in the registry: whether and when they certified."""

    __tablename__ = "pensioners"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(20))
    region: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | suspended
    certified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    certified_by: Mapped[str | None] = mapped_column(String(64))
    next_due: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FaceTemplate(Base):
    """The enrolled reference embedding (建模) of one pensioner."""

    __tablename__ = "face_templates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pensioner_id: Mapped[int] = mapped_column(ForeignKey("pensioners.id"), unique=True)
    model: Mapped[str] = mapped_column(String(32))
    embedding: Mapped[list[Any]] = mapped_column(JSON)
    photo_path: Mapped[str | None] = mapped_column(String(255))
    photo_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CertificationAttempt(Base):
    """One selfie verification attempt, by the pensioner or a proxy."""

    __tablename__ = "certification_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pensioner_id: Mapped[int | None] = mapped_column(ForeignKey("pensioners.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_user: Mapped[str] = mapped_column(String(128), index=True)
    proxy: Mapped[bool] = mapped_column(Boolean, default=False)
    relationship: Mapped[str | None] = mapped_column(String(16))
    quality_codes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    distance: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(16))  # passed | failed | rejected
    photo_path: Mapped[str | None] = mapped_column(String(255))
    photo_hash: Mapped[str | None] = mapped_column(String(32), index=True)
    photo_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Liveness evidence for the reviewer (issue 21): stage, challenge, pose, distance_template,
    # distance_pair, band, replay_signals, challenge_result.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class StaffUser(Base):
    __tablename__ = "staff_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="agent")  # agent | supervisor
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The languages this person can chat in ("zh" or "zh,bo"); cases in them come to them first.
    languages: Mapped[str] = mapped_column(String(32), default="zh", server_default="zh")

    @property
    def language_list(self) -> list[str]:
        return [code for code in (self.languages or "zh").split(",") if code]


class Case(Base):
    """A conversation escalated to a person (人工)."""

    __tablename__ = "cases"
    # The dashboard's handoff figures read only these columns for a range of created_at.
    __table_args__ = (Index("ix_cases_created_at", "created_at", "assigned_to", "status",
                            "first_reply_at", "closed_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_key: Mapped[str] = mapped_column(String(160), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8), default="zh", server_default="zh")  # the chat's
    status: Mapped[str] = mapped_column(String(16), default="waiting", index=True)
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    pensioner_id: Mapped[int | None] = mapped_column(ForeignKey("pensioners.id"))
    transcript: Mapped[list[Any]] = mapped_column(JSON, default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    proxy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decision: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a staff member first wrote to the user (the claim's greeting included): the
    # dashboard's "wait to first reply" without reading every message.
    first_reply_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CaseMessage(Base):
    __tablename__ = "case_messages"
    __table_args__ = (Index("ix_case_messages_case_author_at", "case_id", "author", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    author: Mapped[str] = mapped_column(String(16))  # user | staff | bot | note
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class HomeVisitRequest(Base):
    """A request for staff to certify at home (上门认证)."""

    __tablename__ = "home_visit_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    pensioner_name: Mapped[str] = mapped_column(String(64))
    id_number: Mapped[str] = mapped_column(String(18))
    address: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(16))
    chat_user: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProxyLink(Base):
    """A family member's chat identity acting for a pensioner (代他人认证)."""

    __tablename__ = "proxy_links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proxy_key: Mapped[str] = mapped_column(String(160), index=True)
    pensioner_id: Mapped[int] = mapped_column(ForeignKey("pensioners.id"))
    relationship: Mapped[str] = mapped_column(String(16))
    consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consent_channel: Mapped[str | None] = mapped_column(String(16))
    reminder_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    year: Mapped[int] = mapped_column(Integer)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReminderSubscription(Base):
    """A chat identity that asked to be reminded of a pensioner's next certification."""

    __tablename__ = "reminder_subscriptions"
    __table_args__ = (UniqueConstraint("conversation_key", "pensioner_id",
                                       name="uq_reminder_subscription"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_key: Mapped[str] = mapped_column(String(160), index=True)  # channel:user
    channel: Mapped[str] = mapped_column(String(16))
    pensioner_id: Mapped[int] = mapped_column(ForeignKey("pensioners.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # self | family
    language: Mapped[str] = mapped_column(String(8), default="zh", server_default="zh")  # of the reminders
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReminderDelivery(Base):
    """One reminder of one subscription for one due date: at most one row per kind."""

    __tablename__ = "reminder_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "due_date", "kind",
                                       name="uq_reminder_delivery"),
                      # the dashboard's reminder figures, index-only for a range of created_at
                      Index("ix_reminder_deliveries_created_at", "created_at", "status", "attempts",
                            "sent_at", "subscription_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("reminder_subscriptions.id"), index=True)
    due_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))  # first | second | missed
    # sending | sent | retry | send_failed | cancelled
    status: Mapped[str] = mapped_column(String(16), default="sending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditLog(Base):
    """Who did what, when. Never holds photos; ID numbers masked."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(160))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CertificationEvent(Base):
    """One step of a certification in the chat, for the agency's dashboard (issue 22).

    Written where a step leaves no other durable record (started, ID given, selfie sent)
    and at each verdict, approval and satisfaction answer. Holds no ID number, name or
    chat identity: ``subject`` is a pseudonym of the chat (to count people), ``prefecture``
    the ID number's 4-digit region code (or ``other``), ``day`` the agency's local date.
    The dashboard reads the daily totals (:class:`CertificationDaily`) kept with it.
    """

    __tablename__ = "certification_events"
    __table_args__ = (Index("ix_certification_events_day_kind", "day", "kind"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str | None] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    prefecture: Mapped[str | None] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(16))
    proxy: Mapped[bool] = mapped_column(Boolean, default=False)
    case_id: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)


class CertificationDaily(Base):
    """Daily totals of the events, kept in the same transaction as each event.

    ``events`` counts every event; ``people`` counts a person (``subject``) only on the day
    they first reached this step (and cause) in the calendar year, so the sum over any range
    of days counts people, not attempts. ``cause`` is ``""`` for the step as a whole (a
    failed event adds to both its cause's row and the ``""`` row); ``prefecture`` ``""`` when
    not known yet. For satisfaction answers ``cause`` is the score.
    """

    __tablename__ = "certification_daily"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    cause: Mapped[str] = mapped_column(String(16), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    prefecture: Mapped[str] = mapped_column(String(8), primary_key=True)
    people: Mapped[int] = mapped_column(Integer, default=0)
    events: Mapped[int] = mapped_column(Integer, default=0)


class CertificationFirst(Base):
    """That a person (pseudonym) reached a step (and cause) in a year: counted once."""

    __tablename__ = "certification_firsts"
    subject: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    cause: Mapped[str] = mapped_column(String(16), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class CannedResponse(Base):
    """A canned response (常用语) staff insert into replies; supervisors edit them.

    ``shortcut`` is what follows "/" in the reply box (``/重拍``)."""

    __tablename__ = "canned_responses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(32), unique=True)
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
