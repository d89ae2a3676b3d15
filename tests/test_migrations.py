"""The Alembic migrations build the schema the ORM models describe, on SQLite and PostgreSQL,
and survive a downgrade to the first revision and back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bot.core.storage.db import MIGRATIONS_DIR, migrate
from bot.core.storage.models import Base
from tests.services import create_postgres_database, drop_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    url = create_postgres_database()
    if url is None:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    try:
        yield url
    finally:
        drop_postgres_database(url)


def differences(url: str) -> list[Any]:
    """What autogenerate would still write: tables, columns (types, server defaults), indexes,
    unique constraints and foreign keys that differ between the database and the models."""
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "compare_server_default": True})
        return list(compare_metadata(context, Base.metadata))

    async def run() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_the_migrations_build_the_models_schema_and_downgrade(empty_database: str) -> None:
    migrate(empty_database)
    assert differences(empty_database) == []

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", empty_database)
    config.attributes["configure_logger"] = False
    command.downgrade(config, "base")
    migrate(empty_database)
    assert differences(empty_database) == []
