"""The face worker: an arq job queue in Redis, verification off the chat's event loop.

Flow: the chat enqueues ``verify_selfie`` (the photo travels inside the job, so any
machine with access to Redis and the database can take it) and answers "正在核验". A
worker process decodes, checks quality and compares with the stored reference
embedding, records the attempt and its audit line, then publishes the result to the
Redis stream ``face:results``; the server side (:mod:`face.service`) turns it into a
pushed reply. arq keeps a job in its queue until a worker finished it: if a worker dies
mid-job, the job's in-progress lock expires (job timeout + 10 s) and another worker runs
it again. A result already recorded is not recorded twice (``face:done:<request_id>``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from bot.config import Settings
from bot.storage.db import Database
from face.engine import FaceEngine
from face.store import (
    AttemptRecord,
    PhotoStore,
    cleanup_expired,
    find_reused_photo,
    get_template,
    photo_store,
    record_attempt,
)

log = logging.getLogger(__name__)
QUEUE = "face:queue"
JOB_NAME = "verify_selfie"
RESULTS_STREAM = "face:results"
DONE_TTL_S = 7 * 86400
MAX_TRIES = 5
# Test-only fault injection: seconds a job sleeps before working (to kill a worker mid-job).
DELAY_ENV = "BOT_FACE_JOB_DELAY_S"


@dataclass
class WorkerDeps:
    """What a worker process holds for its whole life."""

    settings: Settings
    engine: FaceEngine
    db: Database
    redis: aioredis.Redis
    photos: PhotoStore
    executor: ThreadPoolExecutor


def decision_for(verified: bool, issues: list[str]) -> str:
    if verified:
        return "passed"
    return "rejected" if issues else "failed"


async def publish(redis: aioredis.Redis, result: dict[str, Any]) -> None:
    """Hand a result to the server side (a stream read by a consumer group)."""
    await redis.xadd(RESULTS_STREAM, {"data": json.dumps(result, ensure_ascii=False)},
                     maxlen=100_000, approximate=True)


async def process(deps: WorkerDeps, request: dict[str, Any]) -> dict[str, Any]:
    """Verify one selfie request, record it, publish the result (idempotent per request)."""
    request_id = str(request["request_id"])
    done_key = f"face:done:{request_id}"
    previous = await deps.redis.get(done_key)
    if previous:
        result: dict[str, Any] = json.loads(previous)
        await publish(deps.redis, result)
        return result
    delay = float(os.environ.get(DELAY_ENV) or 0)
    if delay:
        await asyncio.sleep(delay)
    started = time.perf_counter()
    pensioner_id = request.get("pensioner_id")
    base = {key: request.get(key) for key in
            ("request_id", "conversation_key", "pensioner_id", "proxy", "relationship", "dialog",
             "channel", "chat_user")}
    template = await get_template(deps.db, int(str(pensioner_id))) if pensioner_id else None
    if template is None:
        result = {**base, "decision": "not_enrolled", "issues": [], "distance": None,
                  "threshold": deps.engine.threshold, "attempt_id": None}
    else:
        loop = asyncio.get_running_loop()
        verdict = await loop.run_in_executor(deps.executor, deps.engine.verify,
                                             list(template.embedding), bytes(request["photo"]))
        decision = decision_for(verdict.verified, verdict.issues)
        # A photo seen before (passed already, or sent for someone else) is not accepted:
        # it goes to a person for review (family flow, issue 6).
        reused = await find_reused_photo(deps.db, verdict.analysis.photo_hash, template.pensioner_id)
        if reused is not None and decision == "passed":
            decision = "flagged"
        photo_path, expires = deps.photos.save("attempts", verdict.analysis.image)
        record = AttemptRecord(
            pensioner_id=int(str(pensioner_id)), channel=str(request.get("channel") or ""),
            chat_user=str(request.get("chat_user") or ""), proxy=bool(request.get("proxy")),
            relationship=request.get("relationship"), quality_codes=list(verdict.issues),
            distance=verdict.distance, threshold=verdict.threshold, decision=decision,
            photo_path=photo_path, photo_hash=verdict.analysis.photo_hash, photo_expires_at=expires)
        attempt_id = await record_attempt(deps.db, record, id_number=request.get("id_number"),
                                          request_id=request_id)
        result = {**base, "decision": decision, "issues": list(verdict.issues),
                  "distance": verdict.distance, "threshold": verdict.threshold,
                  "attempt_id": attempt_id, "photo_hash": verdict.analysis.photo_hash}
        if reused is not None:
            other = reused.pensioner_id != template.pensioner_id
            result.update(reused_attempt=reused.id, reused_other_pensioner=other)
            await deps.db.audit(
                f"face:{record.channel}", "photo_reused", target=f"pensioner:{pensioner_id}",
                attempt_id=attempt_id, reused_attempt=reused.id, other_pensioner=other,
                decision=decision, proxy=record.proxy, request_id=request_id,
                proxy_key=f"{record.channel}:{record.chat_user}" if record.proxy else None)
    result["seconds"] = round(time.perf_counter() - started, 3)
    await deps.redis.set(done_key, json.dumps(result, ensure_ascii=False), ex=DONE_TTL_S)
    await publish(deps.redis, result)
    log.info("face verdict", extra={"decision": result["decision"], "issues": result["issues"],
                                    "distance": result["distance"], "seconds": result["seconds"]})
    return result


async def verify_selfie(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The arq job. A failure (database down, a bug) is retried with a growing delay; after
    the last try the chat is told to send the photo again, so nobody waits forever."""
    from arq.worker import Retry

    try:
        return await process(ctx["deps"], request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        job_try = int(ctx.get("job_try") or 1)
        log.error("face job failed (try %s): %s", job_try, exc.__class__.__name__)
        if job_try < MAX_TRIES:
            raise Retry(defer=2 * job_try) from exc
        result = {key: request.get(key) for key in
                  ("request_id", "conversation_key", "pensioner_id", "proxy", "relationship",
                   "dialog", "channel", "chat_user")}
        result.update(decision="error", issues=[], distance=None, threshold=None, attempt_id=None)
        await publish(ctx["deps"].redis, result)
        return result


async def cleanup_photos(ctx: dict[str, Any]) -> int:
    """The arq cron job: delete photos past their retention."""
    from handlers.handoff import purge_case_photos

    deps: WorkerDeps = ctx["deps"]
    removed = await cleanup_expired(deps.db, deps.photos, datetime.now(UTC))
    return removed + await asyncio.to_thread(purge_case_photos, deps.settings.storage.data_dir,
                                             deps.settings.face.photo_retention_days)


async def send_reminders(ctx: dict[str, Any]) -> dict[str, int]:
    """The arq cron job: one reminder pass (bot/reminders.py), as ``bot reminders send``."""
    from bot.reminders import run_pass

    deps: WorkerDeps = ctx["deps"]
    result = await run_pass(deps.settings, deps.db, deps.redis)
    return result.counts()


async def start_deps(settings: Settings, redis: aioredis.Redis,
                     engine: FaceEngine | None = None) -> WorkerDeps:
    """Load the model (a clear error if its weights are missing) and connect the database."""
    from bot.storage.db import migrate

    if engine is None:
        engine = await asyncio.to_thread(FaceEngine.from_settings, settings)
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(migrate, settings.database_url)
    return WorkerDeps(settings=settings, engine=engine, db=Database(settings.database_url),
                      redis=redis, photos=photo_store(settings),
                      executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="face"))


async def stop_deps(deps: WorkerDeps) -> None:
    deps.executor.shutdown(wait=False, cancel_futures=True)
    await deps.db.dispose()


def build_worker(settings: Settings, redis_url: str, *, burst: bool = False,
                 engine: FaceEngine | None = None, handle_signals: bool = True) -> Any:
    """An arq Worker for the face queue (one job at a time: the work is CPU-bound)."""
    from arq import cron, func
    from arq.connections import RedisSettings
    from arq.worker import Worker

    holder: dict[str, WorkerDeps] = {}

    async def on_startup(ctx: dict[str, Any]) -> None:
        holder["deps"] = ctx["deps"] = await start_deps(settings, ctx["redis"], engine)
        log.info("face worker ready", extra={"pid": os.getpid()})

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if "deps" in holder:
            await stop_deps(holder["deps"])

    timeout = settings.face.job_timeout_s
    return Worker(
        # keep_result=0: arq would store the job's arguments (the photo) with its result.
        functions=[func(verify_selfie, name=JOB_NAME, timeout=timeout, max_tries=MAX_TRIES,
                        keep_result=0)],
        # arq holds a job for (longest timeout + 10 s) before another worker may retry it:
        # keep the cron timeout no longer than the selfie timeout.
        cron_jobs=[cron(cleanup_photos, minute={0, 15, 30, 45}, run_at_startup=True, timeout=timeout),
                   cron(send_reminders, minute=set(range(0, 60, settings.reminders.check_every_minutes)),
                        timeout=timeout)],
        queue_name=QUEUE, redis_settings=RedisSettings.from_dsn(redis_url), burst=burst,
        on_startup=on_startup, on_shutdown=on_shutdown, max_jobs=1, job_timeout=timeout,
        keep_result=0, poll_delay=0.2, handle_signals=handle_signals,
        health_check_interval=60)
