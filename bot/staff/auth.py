"""Staff accounts, logins and sessions.

- Passwords are argon2id hashes (argon2-cffi); unknown usernames cost the same time.
- Lockout: ``staff.max_failed_logins`` failures in a row lock the username for
  ``staff.lockout_s`` seconds (a Redis counter, mirrored to ``staff_users`` for the
  supervisor's view), even for the right password.
- Sessions live in Redis under ``staff:session:<sha256(token)>`` with a sliding TTL of
  ``staff.session_ttl_s``; the cookie holds only the random token. Each session has its
  own CSRF token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select

from bot.core.config import Settings
from bot.core.errors import BadRequest, BotError, Unauthorized
from bot.core.storage.db import Database
from bot.core.storage.models import StaffUser
from bot.core.storage.redis import redis_guard

ROLES = ("agent", "supervisor")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{2,64}$")
MIN_PASSWORD_CHARS = 8
SESSION_PREFIX = "staff:session:"
FAIL_PREFIX = "staff:fail:"


class LockedOut(BotError):
    """Too many failed logins for this username."""

    status = 429
    code = "locked_out"
    user_message = "登录失败次数太多，账号已暂时锁定，请稍后再试。"


class LoginFailed(Unauthorized):
    code = "login_failed"
    user_message = "用户名或密码不对。"


@dataclass(frozen=True)
class StaffSession:
    """A logged-in staff member (what a request acts as)."""

    token: str
    staff_id: int
    username: str
    role: str
    csrf: str

    @property
    def actor(self) -> str:
        """The audit-log actor, e.g. ``staff:wang``."""
        return f"staff:{self.username}"

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def _session_key(token: str) -> str:
    return SESSION_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def validate_new_user(username: str, password: str, role: str) -> None:
    """Raise BadRequest for a bad username, short password or unknown role."""
    if not USERNAME_RE.match(username):
        raise BadRequest("username must be 2-64 letters, digits or _.-", code="invalid_username",
                         user_message="用户名只能用字母、数字和 _.-，2 到 64 个字符。")
    if len(password) < MIN_PASSWORD_CHARS:
        raise BadRequest("password too short", code="weak_password",
                         user_message=f"密码至少 {MIN_PASSWORD_CHARS} 个字符。")
    if role not in ROLES:
        raise BadRequest(f"role must be one of {ROLES}", code="invalid_role", user_message="角色不对。")


class StaffAuth:
    """Creates staff users, checks passwords, keeps sessions."""

    def __init__(self, settings: Settings, db: Database, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.hasher = PasswordHasher()
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))

    async def create_user(self, username: str, password: str, role: str = "agent") -> StaffUser:
        """Add a staff member; BadRequest if the name is taken or the input is bad."""
        validate_new_user(username, password, role)
        async with self.db.session() as session:
            taken = await session.scalar(select(StaffUser.id).where(StaffUser.username == username))
            if taken is not None:
                raise BadRequest("username taken", code="username_taken", status=409,
                                 user_message="这个用户名已经有了。")
            user = StaffUser(username=username, password_hash=await asyncio.to_thread(self.hasher.hash, password),
                             role=role,
                             active=True, failed_logins=0)
            session.add(user)
            await session.flush()
            return user

    async def set_password(self, username: str, password: str) -> None:
        validate_new_user(username, password, "agent")
        async with self.db.session() as session:
            user = await session.scalar(select(StaffUser).where(StaffUser.username == username))
            if user is None:
                raise BadRequest("no such user", code="unknown_user", status=404, user_message="没有这个用户。")
            user.password_hash = await asyncio.to_thread(self.hasher.hash, password)

    @redis_guard
    async def _failures(self, username: str) -> int:
        return int(await self.redis.get(FAIL_PREFIX + username.lower()) or 0)

    @redis_guard
    async def _count_failure(self, username: str) -> int:
        key = FAIL_PREFIX + username.lower()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.settings.staff.lockout_s)
            count, _ = await pipe.execute()
        return int(count)

    @redis_guard
    async def _clear_failures(self, username: str) -> None:
        await self.redis.delete(FAIL_PREFIX + username.lower())

    async def authenticate(self, username: str, password: str) -> StaffUser:
        """The active user with this password; LoginFailed or LockedOut otherwise."""
        cfg = self.settings.staff
        now = datetime.now(timezone.utc)
        if await self._failures(username) >= cfg.max_failed_logins:
            await self.db.audit(f"staff:{username[:64]}", "login_locked")
            raise LockedOut("username locked")
        async with self.db.session() as session:
            user = await session.scalar(select(StaffUser).where(StaffUser.username == username))
        locked_until = user.locked_until if user is not None else None
        if locked_until is not None and locked_until.tzinfo is None:
            locked_until = locked_until.replace(tzinfo=timezone.utc)
        if locked_until is not None and locked_until > now:
            raise LockedOut("username locked")
        ok = await asyncio.to_thread(self._verify, user.password_hash if user else self._dummy_hash,
                                     password)
        failed = user is None or not user.active or not ok
        new_hash = None
        if not failed and user is not None and self.hasher.check_needs_rehash(user.password_hash):
            new_hash = await asyncio.to_thread(self.hasher.hash, password)
        count = await self._count_failure(username) if failed else 0
        if user is not None:
            async with self.db.session() as session:
                row = await session.get(StaffUser, user.id)
                assert row is not None
                if failed:
                    row.failed_logins = (row.failed_logins or 0) + 1
                    if count >= cfg.max_failed_logins:
                        row.locked_until = now + timedelta(seconds=cfg.lockout_s)
                else:
                    row.failed_logins = 0
                    row.locked_until = None
                    if new_hash:
                        row.password_hash = new_hash
        if failed:
            await self.db.audit(f"staff:{username[:64]}", "login_failed")
            raise LoginFailed("wrong username or password")
        await self._clear_failures(username)
        assert user is not None
        return user

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(password_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def unlock(self, username: str) -> None:
        await self._clear_failures(username)
        async with self.db.session() as session:
            user = await session.scalar(select(StaffUser).where(StaffUser.username == username))
            if user is not None:
                user.failed_logins = 0
                user.locked_until = None

    @redis_guard
    async def start_session(self, user: StaffUser) -> StaffSession:
        """A new session for a user who just logged in."""
        token = secrets.token_urlsafe(32)
        staff = StaffSession(token=token, staff_id=user.id, username=user.username, role=user.role,
                             csrf=secrets.token_urlsafe(32))
        data = asdict(staff)
        data.pop("token")
        await self.redis.set(_session_key(token), json.dumps(data), ex=self.settings.staff.session_ttl_s)
        return staff

    async def load_session(self, token: str | None) -> StaffSession | None:
        """The session for this cookie value, if it exists and its user is still active."""
        if not token or len(token) > 100:
            return None
        raw = await self._get_session(token)
        if raw is None:
            return None
        data = json.loads(raw)
        async with self.db.session() as session:
            user = await session.get(StaffUser, int(data["staff_id"]))
            if user is None or not user.active:
                await self.end_session(token)
                return None
            role = user.role
        return StaffSession(token=token, staff_id=int(data["staff_id"]), username=str(data["username"]),
                            role=role, csrf=str(data["csrf"]))

    @redis_guard
    async def _get_session(self, token: str) -> bytes | None:
        key = _session_key(token)
        raw = await self.redis.get(key)
        if raw is not None:
            await self.redis.expire(key, self.settings.staff.session_ttl_s)
        return raw  # type: ignore[no-any-return]

    @redis_guard
    async def end_session(self, token: str) -> None:
        await self.redis.delete(_session_key(token))

    async def users(self) -> list[StaffUser]:
        async with self.db.session() as session:
            return list(await session.scalars(select(StaffUser).order_by(StaffUser.username)))

    async def set_active(self, user_id: int, active: bool) -> StaffUser:
        async with self.db.session() as session:
            user = await session.get(StaffUser, user_id)
            if user is None:
                raise BadRequest("no such user", code="unknown_user", status=404, user_message="没有这个用户。")
            user.active = active
            return user
