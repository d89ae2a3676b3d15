"""The server side of face verification: enqueue selfies, deliver verdicts.

:class:`FaceService` lives in ``Services.face``. ``submit`` puts a job on the
arq queue (sharing the app's Redis connection pool). A background task reads the results
stream ``face:results`` through a consumer group, so with several server processes each
result is handled once, and a result whose handler died is claimed again after a minute;
a result is acknowledged only after the verdict was pushed. Handling means: update the
chat's dialog state, push the replies through ``services.outbox`` (any channel), record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from arq.connections import ArqRedis

from bot import keys
from bot.core.services import FaceBacklog
from bot.core.storage.redis import REDIS_ERRORS, redis_guard
from bot.core.tasks import running
from bot.services import Services
from dialogs.certify import apply_verdict
from face.jobs import JOB_NAME, QUEUE, RESULTS_STREAM, SelfieRequest

log = logging.getLogger(__name__)
GROUP = "bot"
CLAIM_IDLE_MS = 60_000
APPLIED_TTL_S = 7 * 86400
POLL_S = 0.1  # idle: look for verdicts ten times a second (a verdict waits 50 ms on average)
RATE_SAMPLE = 30      # the last verdicts that tell how fast the workers go
RATE_WINDOW_MS = 120_000
Handler = Callable[["Services", dict[str, Any]], Awaitable[None]]


def _default_handler() -> Handler:
    return apply_verdict


class FaceService:
    """Enqueue selfies; consume verdicts (one instance per server process)."""

    def __init__(self, services: Services, handlers: dict[str, Handler] | None = None) -> None:
        self.services = services
        self.queue = ArqRedis(pool_or_conn=services.redis.connection_pool,
                              default_queue_name=QUEUE)
        self.handlers: dict[str, Handler] = handlers or {}
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._group_ready = False

    def handler_for(self, dialog: str | None) -> Handler:
        """Dialogs other than ``certify`` (family proxy flow) may register their own."""
        return self.handlers.get(dialog or "") or _default_handler()

    @redis_guard
    async def submit(self, request: dict[str, Any]) -> str:
        """Queue a selfie; returns the job id. Raises StorageUnavailable if Redis is down."""
        job = await self.queue.enqueue_job(JOB_NAME, SelfieRequest(request),
                                           _job_id=f"face:{request['request_id']}", _queue_name=QUEUE)
        if job is None:  # the same request id is already queued
            return f"face:{request['request_id']}"
        return job.job_id

    @redis_guard
    async def backlog(self) -> FaceBacklog:
        """Selfies queued or in progress, and the expected wait for one more.

        The pace is the rate of the recent verdicts on the results stream (its entry ids are
        times), but never slower than one worker's time per selfie: when few selfies arrive
        the recent rate measures arrivals, not what the workers can do."""
        redis = self.services.redis
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zcard(QUEUE)
            pipe.xrevrange(RESULTS_STREAM, count=RATE_SAMPLE)
            pipe.time()
            waiting, recent, (now_s, now_us) = await pipe.execute()
        now_ms = int(now_s) * 1000 + int(now_us) // 1000
        stamps: list[int] = []
        job_seconds: list[float] = []
        for entry_id, fields in recent:
            stamp = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
            if now_ms - stamp > RATE_WINDOW_MS:
                break
            stamps.append(stamp)
            try:
                job_seconds.append(float(json.loads(fields[b"data"]).get("seconds") or 0))
            except (KeyError, TypeError, ValueError):
                pass
        rates = []
        if len(stamps) >= 2 and stamps[0] > stamps[-1]:
            rates.append((len(stamps) - 1) * 1000 / (stamps[0] - stamps[-1]))
        one_worker = sorted(s for s in job_seconds if s > 0)
        if one_worker:
            rates.append(1 / one_worker[len(one_worker) // 2])
        ahead = int(waiting) + 1
        return FaceBacklog(int(waiting), ahead / max(rates) if rates else None)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.services.redis.xgroup_create(RESULTS_STREAM, GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - BUSYGROUP: it exists already
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def process_pending(self, block_ms: int | None = None, count: int = 10) -> int:
        """Handle the results waiting for this server (claimed stale ones first)."""
        redis = self.services.redis
        await self._ensure_group()
        handled = 0
        claimed = await redis.xautoclaim(RESULTS_STREAM, GROUP, self.consumer, CLAIM_IDLE_MS,
                                         start_id="0-0", count=count)
        entries = list(claimed[1]) if claimed else []
        if not entries:
            response = await redis.xreadgroup(GROUP, self.consumer, {RESULTS_STREAM: ">"},
                                              count=count, block=block_ms)
            for _, items in response or []:
                entries.extend(items)
        for entry_id, fields in entries:
            if fields is None:  # deleted by trimming
                await redis.xack(RESULTS_STREAM, GROUP, entry_id)
                continue
            if await self._handle(entry_id, fields):
                handled += 1
        return handled

    async def _handle(self, entry_id: bytes, fields: dict[bytes, bytes]) -> bool:
        redis = self.services.redis
        try:
            result = json.loads(fields[b"data"])
        except (KeyError, ValueError):
            log.error("unreadable face result %s dropped", entry_id)
            await redis.xack(RESULTS_STREAM, GROUP, entry_id)
            return False
        applied_key = f"face:applied:{result.get('request_id')}"
        if await redis.exists(applied_key):
            await redis.xack(RESULTS_STREAM, GROUP, entry_id)
            return False
        try:
            await self.handler_for(result.get("dialog"))(self.services, result)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - left pending; claimed again later
            log.exception("face result could not be delivered; will retry")
            return False
        await redis.set(applied_key, "1", ex=APPLIED_TTL_S)
        await redis.xack(RESULTS_STREAM, GROUP, entry_id)
        return True

    async def run(self) -> None:
        """The background task: deliver verdicts until cancelled.

        It polls (no blocking XREADGROUP): cancelling a blocked read on the shared pool can
        leave the app's shutdown waiting on that connection."""
        while True:
            try:
                if not await self.process_pending(block_ms=None):
                    await asyncio.sleep(POLL_S)
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                log.error("face results: redis unavailable (%s); retrying", exc.__class__.__name__)
                await asyncio.sleep(1)
            except Exception:  # noqa: BLE001 - keep delivering; logged loudly
                log.exception("face results consumer failed; retrying")
                await asyncio.sleep(1)

    async def close(self) -> None:
        """Nothing to close: the queue shares the app's connection pool."""


def attach(services: Services) -> FaceService:
    """Create the service and register it as ``services.face``."""
    service = FaceService(services)
    services.face = service
    return service


async def face_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the face service and its verdict consumer for this server process."""
    services = app[keys.SERVICES]
    service = attach(services)
    async with running(service.run(), "face-results"):
        yield
    services.face = None


def setup(app: web.Application) -> None:
    """The face feature: verdict delivery (worker processes are started by ``serve``)."""
    app.cleanup_ctx.append(face_ctx)
