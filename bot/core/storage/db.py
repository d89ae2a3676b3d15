"""The SQL database: async engine, sessions, migrations, and failure mapping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.exc import TimeoutError as SQLTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.core.errors import DatabaseUnavailable
from bot.core.storage.models import AuditLog

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"
# PostgreSQL connections per process: a server keeps SERVER_POOL_SIZE open, a face worker
# (one job at a time) WORKER_POOL_SIZE; MAX_OVERFLOW more are opened for a burst. Two servers
# and two workers need at most 2 x 30 + 2 x 12 = 84, below PostgreSQL's default
# max_connections (100); more processes need a higher max_connections (docs/operations.md).
SERVER_POOL_SIZE = 20
WORKER_POOL_SIZE = 2
MAX_OVERFLOW = 10


class Database:
    """Owns the engine and hands out sessions; maps connection loss to DatabaseUnavailable."""

    def __init__(self, url: str, *, connect_args: dict[str, Any] | None = None,
                 pool_size: int = SERVER_POOL_SIZE) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            kwargs["connect_args"] = {"timeout": 5, **(connect_args or {})}
            kwargs["pool_timeout"] = 5
            # Connections kept open: a busy server runs a few dozen turns at once, and a
            # connection beyond the pool is opened and closed again for each (a new
            # PostgreSQL backend each time, milliseconds of CPU on the same box).
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = MAX_OVERFLOW
        elif connect_args:
            kwargs["connect_args"] = connect_args
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success."""
        try:
            async with self.sessions() as session, session.begin():
                yield session
        except (IntegrityError, DataError, ProgrammingError):
            raise  # our bug or a conflict, not an outage
        except (DBAPIError, SQLTimeoutError, OSError, ConnectionError) as exc:
            log.error("database unavailable: %s", exc.__class__.__name__)
            raise DatabaseUnavailable(f"database: {exc.__class__.__name__}") from exc

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "down" for the health check
            return False

    async def audit(self, actor: str, action: str, target: str | None = None,
                    **details: Any) -> None:
        """Append one audit line in its own transaction."""
        async with self.session() as session:
            session.add(AuditLog(actor=actor, action=action, target=target, details=details))

    async def dispose(self) -> None:
        await self.engine.dispose()


def migrate(url: str) -> None:
    """Run Alembic migrations to every head (synchronous; call before the loop or in a thread).

    "heads", not "head": migrations written on parallel branches (each chained after the
    same revision) all apply, instead of failing with "multiple heads"."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")
