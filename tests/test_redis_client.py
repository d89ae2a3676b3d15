"""The Redis client: commands packed by hiredis are byte-identical to redis-py's own."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from bot.core.storage.redis import make_client

COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "dedup:web:abc", b"", "EX", 86400, "NX"),
    ("SET", "conv:web:u1", '{"text": "需要带什么材料？"}', "PX", 5000),
    ("ZADD", "handoff:recent", time.time(), "web:u1"),
    ("ZREMRANGEBYSCORE", "handoff:recent", 0, 1795941451.598857 - 86400),
    ("EVAL", "return 1", 1, "lock:web:u1", "ab" * 16),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", b"bot"),
    ("INCRBYFLOAT", "x", 1e-07),
]


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "unix:///tmp/never-opened.sock"])
def test_hiredis_packing_matches_redis_py(url: str) -> None:
    client = make_client(url, 1.0)
    fast = client.connection_pool.make_connection()
    plain_class = aioredis.UnixDomainSocketConnection if url.startswith("unix") else aioredis.Connection
    assert isinstance(fast, plain_class) and type(fast) is not plain_class
    plain = plain_class(**client.connection_pool.connection_kwargs)
    for command in COMMANDS:
        assert b"".join(fast.pack_command(*command)) == b"".join(plain.pack_command(*command)), command
    assert b"".join(fast.pack_commands(COMMANDS)) == b"".join(plain.pack_commands(COMMANDS))


def test_hiredis_packing_refuses_what_redis_py_refuses() -> None:
    connection = make_client("redis://127.0.0.1:6379/0", 1.0).connection_pool.make_connection()
    with pytest.raises(redis.exceptions.DataError):
        connection.pack_command("SET", "k", None)
