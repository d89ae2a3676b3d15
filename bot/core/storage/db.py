"""The SQL database: async engine, sessions, migrations, and failure mapping."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InvalidatePoolError, ProgrammingError
from sqlalchemy.exc import TimeoutError as SQLTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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
# A pooled connection unused for longer than this is checked (a round trip) before it is used.
IDLE_PING_S = 10.0
# Built once: the values come as parameters, so the compiled form is cached and reused.
_INSERT_AUDIT = insert(AuditLog.table())


class Database:
    """Owns the engine and hands out sessions; maps connection loss to DatabaseUnavailable."""

    def __init__(self, url: str, *, connect_args: dict[str, Any] | None = None,
                 pool_size: int = SERVER_POOL_SIZE, idle_ping_s: float = IDLE_PING_S) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
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
        # The same pool; each statement commits on its own (see ``autocommit``).
        self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._ping_when_idle(idle_ping_s)

    def _ping_when_idle(self, idle_s: float) -> None:
        """Check a pooled connection before use only when it sat unused for ``idle_s``.

        SQLAlchemy's ``pool_pre_ping`` checks at every checkout, which with asyncpg is three
        round trips (BEGIN, a ping, ROLLBACK): under load, 40 % of all database round trips.
        A connection that was in use a moment ago is almost surely alive; one that sat idle
        may have been closed by a PostgreSQL restart or a firewall, and is then replaced with
        all older connections before the turn uses it. A connection that dies while in use
        fails that one transaction (DatabaseUnavailable, logged) and the pool is renewed."""
        dialect = self.engine.dialect

        @event.listens_for(self.engine.sync_engine, "checkin")
        def _returned(dbapi_connection: Any, record: Any) -> None:
            record.info["returned_at"] = time.monotonic()

        @event.listens_for(self.engine.sync_engine, "checkout")
        def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            returned_at = record.info.get("returned_at")
            if returned_at is None or time.monotonic() - returned_at < idle_s:
                return  # new, or in use a moment ago
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as exc:  # noqa: BLE001 - any failure: replace the pool's connections
                raise InvalidatePoolError(f"idle connection failed its ping: {exc.__class__.__name__}") from exc

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success."""
        async with _outage_is_unavailable(), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection on which every statement commits on its own.

        For a write that is one statement (an audit line, a case message): it is atomic by
        itself, and skipping BEGIN and COMMIT saves two round trips and about half the CPU
        of a session. Several statements that must stand or fall together use ``session``."""
        async with _outage_is_unavailable(), self._autocommit_engine.connect() as connection:
            yield connection

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "down" for the health check
            return False

    async def audit(self, actor: str, action: str, target: str | None = None,
                    **details: Any) -> None:
        """Append one audit line (one statement, committed on its own)."""
        async with self.autocommit() as connection:
            await connection.execute(_INSERT_AUDIT, {"actor": actor, "action": action, "target": target,
                                                     "details": details})

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def _outage_is_unavailable() -> AsyncIterator[None]:
    """A lost or refused connection becomes DatabaseUnavailable (logged); a statement the
    database rejects (our bug, a conflict) stays what it is."""
    try:
        yield
    except (IntegrityError, DataError, ProgrammingError):
        raise
    except (DBAPIError, SQLTimeoutError, OSError, ConnectionError) as exc:
        log.error("database unavailable: %s", exc.__class__.__name__)
        raise DatabaseUnavailable(f"database: {exc.__class__.__name__}") from exc


def migrate(url: str) -> None:
    """Run Alembic migrations to every head (synchronous; call before the loop or in a thread).

    "heads", not "head": migrations written on parallel branches (each chained after the
    same revision) all apply, instead of failing with "multiple heads"."""
    from alembic import command  # deferred: Alembic only when migrating
    from alembic.config import Config  # deferred: as above

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")
