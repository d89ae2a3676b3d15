"""Staff accounts, logins and sessions.

- Passwords are argon2id hashes (argon2-cffi); unknown usernames cost the same time.
- Passwords: at least ``MIN_PASSWORD_CHARS`` (12) characters, not in a small list of
  common passwords, not the username, not one repeated character.
- Lockout: ``staff.max_failed_logins`` failures in a row from one client address lock
  that (exact) username *for that address* for ``staff.lockout_s`` seconds (a Redis
  counter that expires; mirrored to ``staff_users`` for the supervisor's view only), even
  for the right password. Other addresses can still log in, so nobody can keep someone
  else's account locked.
- Sessions live in Redis under ``staff:session:<sha256(token)>`` with a sliding TTL of
  ``staff.session_ttl_s``; the cookie holds only the random token. Each session has its
  own CSRF token and a fingerprint of the password hash it was opened with: a password
  change ends every session of that user.
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
from bot.core.i18n import LANGUAGES, ZH
from bot.core.storage.db import Database
from bot.core.storage.models import StaffUser
from bot.core.storage.redis import redis_guard

ROLES = ("agent", "supervisor")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{2,64}$")
MIN_PASSWORD_CHARS = 12
SESSION_PREFIX = "staff:session:"
FAIL_PREFIX = "staff:fail:"
# Common passwords of 12+ characters (shorter ones fail the length rule anyway); compared
# case-insensitively.
COMMON_PASSWORDS = frozenset({
    "123456789012", "1234567890123", "12345678901234", "123123123123", "123456123456",
    "111111111111", "000000000000", "888888888888", "666666666666", "123321123321",
    "qwertyuiopas", "qwertyuiop12", "qwerty123456", "1qaz2wsx3edc", "1q2w3e4r5t6y",
    "password1234", "password123!", "passwordpassword", "p@ssw0rd1234", "admin1234567",
    "administrator", "adminadmin123", "abc123456789", "abcdefghijkl", "abcd12345678",
    "iloveyou1234", "welcome12345", "letmein12345", "woaini1314520", "woaini123456",
    "5201314520131", "aa123456789a", "zxcvbnm12345", "asdfghjkl123", "changeme1234",
    "secret123456", "qazwsxedcrfv", "987654321098", "a1b2c3d4e5f6", "shebao123456",
})


class LockedOut(BotError, status=429, code="locked_out"):
    """Too many failed logins for this username from this address."""

    user_message = "登录失败次数太多，账号已暂时锁定，请稍后再试。"

    def __init__(self, message: str, seconds: int | None = None) -> None:
        if seconds is not None:
            super().__init__(message, user_message=f"登录失败次数太多，这个账号在本机已锁定"
                             f"{lock_duration_text(seconds)}，请到时再试，或请主管解锁。")
        else:
            super().__init__(message)
        self.seconds = seconds


def lock_duration_text(seconds: int) -> str:
    """900 -> "15分钟", 40 -> "40秒", 7200 -> "2小时"."""
    seconds = max(1, int(seconds))
    if seconds < 60:
        return f"{seconds}秒"
    if seconds < 3600:
        return f"{(seconds + 59) // 60}分钟"
    hours, minutes = divmod((seconds + 59) // 60, 60)
    return f"{hours}小时" + (f"{minutes}分钟" if minutes else "")


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
    password_mark: str = ""

    @property
    def actor(self) -> str:
        """The audit-log actor, e.g. ``staff:wang``."""
        return f"staff:{self.username}"

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def _session_key(token: str) -> str:
    return SESSION_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def _password_mark(password_hash: str) -> str:
    """A short fingerprint of the password hash: sessions opened before a change stop working."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _fail_key(username: str, address: str | None) -> str:
    """One counter per exact username and client address."""
    raw = f"{username}\x00{address or '-'}"
    return FAIL_PREFIX + hashlib.sha256(raw.encode()).hexdigest()


def password_problem(username: str, password: str) -> str | None:
    """Why this password is refused (Chinese, for the form), or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"密码至少 {MIN_PASSWORD_CHARS} 个字符。"
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(password)) < 4:
        return "这个密码太常见、太简单了，请换一个别人猜不到的。"
    if username and username.lower() in lowered:
        return "密码里不要包含用户名。"
    return None


def parse_languages(value: str | None) -> str:
    """"zh,bo" / "bo" / "" -> the stored list (Chinese always included); BadRequest otherwise."""
    codes = [code.strip().lower() for code in (value or "").replace("，", ",").split(",") if code.strip()]
    unknown = [code for code in codes if code not in LANGUAGES]
    if unknown:
        raise BadRequest(f"unknown language {unknown[0]!r}; known: {', '.join(LANGUAGES)}",
                         code="invalid_languages", user_message="语言只能是 zh（中文）或 bo（藏文）。")
    return ",".join(code for code in LANGUAGES if code in {ZH, *codes})


def validate_new_user(username: str, password: str, role: str) -> None:
    """Raise BadRequest for a bad username, weak password or unknown role."""
    if not USERNAME_RE.match(username):
        raise BadRequest("username must be 2-64 letters, digits or _.-", code="invalid_username",
                         user_message="用户名只能用字母、数字和 _.-，2 到 64 个字符。")
    problem = password_problem(username, password)
    if problem:
        raise BadRequest("weak password", code="weak_password", user_message=problem)
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

    async def create_user(self, username: str, password: str, role: str = "agent",
                          languages: str = ZH) -> StaffUser:
        """Add a staff member; BadRequest if the name is taken or the input is bad.

        ``languages``: what they chat in, e.g. "zh,bo" for a Tibetan speaker."""
        validate_new_user(username, password, role)
        languages = parse_languages(languages)
        async with self.db.session() as session:
            taken = await session.scalar(select(StaffUser.id).where(StaffUser.username == username))
            if taken is not None:
                raise BadRequest("username taken", code="username_taken", status=409,
                                 user_message="这个用户名已经有了。")
            user = StaffUser(username=username, password_hash=await asyncio.to_thread(self.hasher.hash, password),
                             role=role, languages=languages,
                             active=True, failed_logins=0)
            session.add(user)
            await session.flush()
            return user

    async def set_password(self, username: str, password: str) -> None:
        """A new password; every session opened with the old one ends (checked on each request)."""
        validate_new_user(username, password, "agent")
        async with self.db.session() as session:
            user = await session.scalar(select(StaffUser).where(StaffUser.username == username))
            if user is None:
                raise BadRequest("no such user", code="unknown_user", status=404, user_message="没有这个用户。")
            user.password_hash = await asyncio.to_thread(self.hasher.hash, password)

    @redis_guard
    async def _failures(self, username: str, address: str | None) -> tuple[int, int]:
        """(failures, seconds until the counter expires) for this username and address."""
        key = _fail_key(username, address)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = await pipe.execute()
        return int(count or 0), max(0, int(ttl or 0))

    @redis_guard
    async def _count_failure(self, username: str, address: str | None) -> int:
        key = _fail_key(username, address)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.settings.staff.lockout_s)
            count, _ = await pipe.execute()
        return int(count)

    @redis_guard
    async def _clear_failures(self, username: str, address: str | None) -> None:
        await self.redis.delete(_fail_key(username, address))

    @redis_guard
    async def _clear_all_failures(self) -> None:
        """A supervisor's unlock: the counters are hashed, so clear them all (they are short-lived)."""
        keys = [key async for key in self.redis.scan_iter(match=FAIL_PREFIX + "*", count=500)]
        if keys:
            await self.redis.delete(*keys)

    async def authenticate(self, username: str, password: str, address: str | None = None) -> StaffUser:
        """The active user with this password; LoginFailed or LockedOut otherwise.

        ``address`` is the client's address: the lockout counts per username and address."""
        cfg = self.settings.staff
        now = datetime.now(timezone.utc)
        failures, ttl = await self._failures(username, address)
        if failures >= cfg.max_failed_logins:
            await self.db.audit(f"staff:{username[:64]}", "login_locked")
            raise LockedOut("username locked for this address", seconds=ttl or cfg.lockout_s)
        async with self.db.session() as session:
            user = await session.scalar(select(StaffUser).where(StaffUser.username == username))
        ok = await asyncio.to_thread(self._verify, user.password_hash if user else self._dummy_hash,
                                     password)
        failed = user is None or not user.active or not ok
        new_hash = None
        if not failed and user is not None and self.hasher.check_needs_rehash(user.password_hash):
            new_hash = await asyncio.to_thread(self.hasher.hash, password)
        count = await self._count_failure(username, address) if failed else 0
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
                        user.password_hash = new_hash
        if failed:
            await self.db.audit(f"staff:{username[:64]}", "login_failed")
            raise LoginFailed("wrong username or password")
        await self._clear_failures(username, address)
        assert user is not None
        return user

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(password_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def unlock(self, username: str) -> None:
        await self._clear_all_failures()
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
                             csrf=secrets.token_urlsafe(32), password_mark=_password_mark(user.password_hash))
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
            mark = _password_mark(user.password_hash) if user is not None else ""
            if user is None or not user.active or data.get("password_mark") != mark:
                await self.end_session(token)
                return None
            role = user.role
        return StaffSession(token=token, staff_id=int(data["staff_id"]), username=str(data["username"]),
                            role=role, csrf=str(data["csrf"]), password_mark=mark)

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

    async def set_languages(self, username: str, languages: str) -> StaffUser:
        """Mark what a staff member chats in ("zh,bo": Tibetan chats come to them first)."""
        value = parse_languages(languages)
        async with self.db.session() as session:
            user = await session.scalar(select(StaffUser).where(StaffUser.username == username))
            if user is None:
                raise BadRequest("no such user", code="unknown_user", status=404, user_message="没有这个用户。")
            user.languages = value
            return user

    async def set_active(self, user_id: int, active: bool) -> StaffUser:
        async with self.db.session() as session:
            user = await session.get(StaffUser, user_id)
            if user is None:
                raise BadRequest("no such user", code="unknown_user", status=404, user_message="没有这个用户。")
            user.active = active
            return user
