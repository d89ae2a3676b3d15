"""Faults: the database going away, Redis restarting under load, two processes, one user."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from bot import keys
from bot.app import create_app
from bot.core.storage.db import migrate
from bot.services import AUDIT_BACKLOG
from tests.conftest import Backends, make_settings
from tests.services import RedisProcess, _pg_admin, servers
from tests.webchat import new_web_id, public_id, web_id


async def post(client: Any, text: str, user: str = "erin") -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/chat", json={"user_id": await web_id(client, user), "text": text})
    return response.status, await response.json()


async def test_database_down_faq_still_answers_actions_say_later(
        aiohttp_client: Any, tmp_path: Path, clean_backends: Backends) -> None:
    if not clean_backends.pg_url:
        pytest.skip("needs the local PostgreSQL to take a database away during the test")
    name = f"bot_fault_{uuid.uuid4().hex[:8]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(migrate, url)
    try:
        client = await aiohttp_client(create_app(make_settings(tmp_path, clean_backends,
                                                               **{"storage.database_url": url})))
        assert (await post(client, "你好"))[0] == 200

        await _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await _pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")

        status, body = await post(client, "需要带什么材料")
        assert status == 200 and "身份证" in body["replies"][0]["text"], "FAQ works without the database"
        status, body = await post(client, "转人工")
        assert status == 200
        assert "稍后再试" in body["replies"][-1]["text"]
        health = await client.get("/healthz")
        assert health.status == 503 and (await health.json())["database"] == "down"
        # a scam warning needs no database, but its audit line does: kept in Redis meanwhile
        status, body = await post(client, "社区的人说认证要交50块钱手续费")
        assert status == 200 and body["replies"]
        redis = client.server.app[keys.SERVICES].redis
        assert await redis.llen(AUDIT_BACKLOG) == 1

        await _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        status, body = await post(client, "转人工")
        assert status == 200 and "转接人工" in body["replies"][0]["text"]
        # the audit line of the handoff is in the database, nothing was lost
        import asyncpg

        conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=name)
        try:
            assert await conn.fetchval("SELECT count(*) FROM cases") == 1
            assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'handoff'") == 1
            # the line kept in Redis went in first, marked with when it happened
            rows = await conn.fetch("SELECT action, details FROM audit_log ORDER BY id")
            assert [row["action"] for row in rows][-2:] == ["scam_warning", "handoff"]
            assert "logged_at" in json.loads(rows[-2]["details"])
            assert await redis.llen(AUDIT_BACKLOG) == 0
        finally:
            await conn.close()
    finally:
        await _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_redis_restart_under_load(aiohttp_client: Any, tmp_path: Path,
                                        clean_backends: Backends) -> None:
    server = RedisProcess().start()
    try:
        settings = make_settings(tmp_path, clean_backends, **{"storage.redis_url": server.url,
                                                              "storage.redis_timeout_s": 0.5,
                                                              "conversation.user_lock_timeout_s": 3})
        client = await aiohttp_client(create_app(settings))
        assert (await post(client, "啊啊啊啊", user="keep"))[0] == 200
        sync_redis.Redis(port=server.port).bgrewriteaof()
        await asyncio.sleep(0.3)
        statuses: list[int] = []
        durations: list[float] = []

        async def user_loop(n: int) -> None:
            for i in range(15):
                started = time.monotonic()
                status, body = await post(client, f"第{i}个问题 材料", user=f"load{n}")
                durations.append(time.monotonic() - started)
                statuses.append(status)
                assert status in (200, 503), body
                if status == 503:
                    assert body["error"] == "storage_unavailable" and body["message"]
                await asyncio.sleep(0.05)

        async def restart() -> None:
            await asyncio.sleep(0.2)
            server.stop()
            await asyncio.sleep(0.5)
            server.start()

        await asyncio.gather(*(user_loop(n) for n in range(8)), restart())
        # A lock held when Redis died expires after user_lock_timeout_s; nothing waits longer.
        assert max(durations) < 3 + 1.5, "no request hangs beyond the timeout"
        assert 503 in statuses and 200 in statuses
        returned = time.monotonic()
        while (await post(client, "你好", user="fresh"))[0] != 200:
            assert time.monotonic() - returned < 5, "serving again within 5 s of Redis returning"
            await asyncio.sleep(0.1)
        status, body = await post(client, "嗯嗯嗯", user="keep")
        assert "转给工作人员" in body["replies"][0]["text"], "state Redis kept is still there"
    finally:
        server.stop()


@pytest.mark.slow
async def test_two_processes_keep_one_users_messages_in_order(tmp_path: Path,
                                                              clean_backends: Backends) -> None:
    async with servers(2, clean_backends.env(tmp_path / "var")) as (ports, session):
        frank = await new_web_id(session, f"http://127.0.0.1:{ports[0]}/api/chat/session")

        async def send(i: int) -> None:
            port = ports[i % 2]
            async with session.post(f"http://127.0.0.1:{port}/api/chat",
                                    json={"user_id": frank, "text": f"需要带什么材料{i}"}) as r:
                assert r.status == 200

        await asyncio.gather(*(send(i) for i in range(20)))
        raw = sync_redis.Redis.from_url(clean_backends.redis_url).get(f"conv:web:{public_id(frank)}")
        state = json.loads(raw)
        assert state["turns"] == 20, "no turn was lost to a concurrent write"
        roles = [entry["role"] for entry in state["transcript"]]
        # every user message is followed by its own answer(s): never two user turns in a row
        first_user = roles.index("user")
        pairs = list(zip(roles[first_user:], roles[first_user + 1:], strict=False))
        assert ("user", "user") not in pairs, roles
        assert roles[-1] == "bot", roles


async def _scratch_database(clean_backends: Backends) -> tuple[str, str]:
    if not clean_backends.pg_url:
        pytest.skip("needs the local PostgreSQL to end the server side of a pooled connection")
    name = f"bot_ping_{uuid.uuid4().hex[:8]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def test_a_pooled_connection_in_steady_use_is_not_pinged_an_idle_one_is(
        clean_backends: Backends) -> None:
    """Back-to-back transactions do not each pay a ping (three round trips with asyncpg); a
    connection that sat idle past ``idle_ping_s`` is checked before it is used."""
    from sqlalchemy import text

    from bot.core.storage.db import Database

    name, url = await _scratch_database(clean_backends)
    database = Database(url, idle_ping_s=0.3)
    pings: list[object] = []
    real_ping = database.engine.dialect.do_ping

    def counting_ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    database.engine.dialect.do_ping = counting_ping  # type: ignore[method-assign]
    try:
        for _ in range(5):
            async with database.session() as session:
                assert (await session.execute(text("SELECT 1"))).scalar() == 1
        assert pings == [], "a connection in steady use is not pinged"
        await asyncio.sleep(0.4)
        async with database.session() as session:
            await session.execute(text("SELECT 1"))
        assert len(pings) == 1, "an idle connection is pinged once before use"
    finally:
        await database.dispose()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_an_idle_connection_postgres_closed_is_replaced_before_the_turn_uses_it(
        clean_backends: Backends) -> None:
    """PostgreSQL restarted (or a firewall dropped the connection) while the pool sat idle:
    the next transaction gets a new connection instead of failing."""
    from sqlalchemy import text

    from bot.core.storage.db import Database

    name, url = await _scratch_database(clean_backends)
    database = Database(url, idle_ping_s=0.2)
    try:
        async with database.session() as session:
            before = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
        await _pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        await asyncio.sleep(0.3)
        async with database.session() as session:
            after = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
        assert after != before
    finally:
        await database.dispose()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
