"""The face worker: an arq job queue in Redis, verification off the chat's event loop.

Flow: the chat enqueues ``verify_selfie`` (the photo travels inside the job, so any
machine with access to Redis and the database can take it) and answers "正在核验". A
worker process decodes, checks quality and compares with the stored reference
embedding, records the attempt and its audit line, then publishes the result to the
Redis stream ``face:results``; the server side (:mod:`bot.face_service`) turns it into a
pushed reply. arq keeps a job in its queue until a worker finished it: if a worker dies
mid-job, the job's in-progress lock expires (job timeout + 10 s) and another worker runs
it again. A result already recorded is not recorded twice (``face:done:<request_id>``).
A photo whose header is a photo's but whose pixels do not decode was cut off or damaged on
the way (the platform's fault or ours): its result is ``incomplete`` and it is not recorded
as an attempt, so it does not use up one of the user's daily tries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from arq import cron, func
from arq.connections import RedisSettings
from arq.worker import Retry, Worker

from bot.core.config import Settings
from bot.core.images import sniff
from bot.core.storage.db import WORKER_POOL_SIZE, Database, migrate
from bot.records.attempts import (
    AttemptRecord,
    PhotoStore,
    cleanup_expired,
    find_reused_photo,
    get_template,
    photo_store,
    record_attempt,
)
from bot.records.cases import purge_case_photos
from bot.records.reminders import Deliverer, run_pass
from face import liveness
from face.engine import FaceEngine, Verdict, band, cosine_distance
from face.pose import predictor

log = logging.getLogger(__name__)
QUEUE = "face:queue"
JOB_NAME = "verify_selfie"
RESULTS_STREAM = "face:results"
DONE_TTL_S = 7 * 86400
MAX_TRIES = 5
HEARTBEAT_S = 1.0  # a worker busy with jobs still polls (health check, aborts) this often
# Test-only fault injection: seconds a job sleeps before working (to kill a worker mid-job).
DELAY_ENV = "BOT_FACE_JOB_DELAY_S"


DelivererFactory = Callable[[Settings, aioredis.Redis], Deliverer]


class SelfieRequest(dict[str, Any]):
    """A selfie job's arguments, as the chat queues them.

    arq logs every job it starts with ``repr`` of its arguments: this one carries the photo
    (hundreds of KB, turned into a string of a few MB for each job, then cut to 80
    characters) and personal data (the chat, the ID number). Its repr names the request only.
    """

    def __repr__(self) -> str:
        return f"<selfie request {self.get('request_id')}>"


@dataclass
class WorkerDeps:
    """What a worker process holds for its whole life."""

    settings: Settings
    engine: FaceEngine
    db: Database
    redis: aioredis.Redis
    photos: PhotoStore
    executor: ThreadPoolExecutor
    deliverer_factory: DelivererFactory | None = None  # the reminder pass's senders (assembly)


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
        judged = await _judge(deps, request, base, list(template.embedding), template.pensioner_id)
        if judged is None:  # damaged on the way: not an attempt
            return await _not_an_attempt(deps, base, request_id, done_key, started)
        result = judged
    result["seconds"] = round(time.perf_counter() - started, 3)
    await deps.redis.set(done_key, json.dumps(result, ensure_ascii=False), ex=DONE_TTL_S)
    await publish(deps.redis, result)
    log.info("face verdict", extra={"decision": result["decision"], "issues": result["issues"],
                                    "distance": result["distance"], "seconds": result["seconds"]})
    return result


def damaged_on_the_way(issues: list[str], photo: bytes) -> bool:
    """Undecodable pixels behind a valid photo header: a truncated or damaged transfer."""
    return issues == ["not_an_image"] and sniff(photo) is not None


async def _not_an_attempt(deps: WorkerDeps, base: dict[str, Any], request_id: str, done_key: str,
                          started: float) -> dict[str, Any]:
    """The ``incomplete`` result: audited, published, but not recorded as an attempt."""
    result = {**base, "decision": "incomplete", "issues": ["not_an_image"], "distance": None,
              "threshold": deps.engine.threshold, "attempt_id": None,
              "seconds": round(time.perf_counter() - started, 3)}
    await deps.db.audit(f"face:{base.get('channel') or ''}", "face_photo_unreadable",
                        target=f"pensioner:{base.get('pensioner_id')}", request_id=request_id,
                        proxy=bool(base.get("proxy")))
    await deps.redis.set(done_key, json.dumps(result, ensure_ascii=False), ex=DONE_TTL_S)
    await publish(deps.redis, result)
    log.info("face verdict", extra={"decision": "incomplete", "issues": result["issues"],
                                    "distance": None, "seconds": result["seconds"]})
    return result


async def _judge(deps: WorkerDeps, request: dict[str, Any], base: dict[str, Any],
                 reference: list[float], pensioner_id: int) -> dict[str, Any] | None:
    """Verify, decide (grey zone, replay signals, pose challenge), record, build the result.

    None when the photo was damaged on the way (not an attempt)."""
    request_id = str(request["request_id"])
    loop = asyncio.get_running_loop()
    stage = "challenge" if request.get("stage") == "challenge" else "frontal"
    # The chat says whether to ask for a pose (its face.challenge); else the worker's setting.
    challenge_on = bool(request.get("liveness", deps.settings.face.challenge))
    first = await liveness.recall(deps.redis, request.get("first_request")) if stage == "challenge" \
        else None
    deadline = request.get("challenge_expires_at")
    if first is not None and deadline and time.time() > float(deadline):
        first = None  # too late: judged as an expired challenge
    if first is not None and request.get("challenge") in liveness.POSES:
        first.challenge = str(request["challenge"])  # the user asked for another pose (换一个动作)
    bounds = (deps.settings.face.accept_below, deps.settings.face.reject_above)
    verdict, evidence = await loop.run_in_executor(deps.executor, _measure, deps.engine,
                                                   reference, bytes(request["photo"]), stage,
                                                   first, bounds)
    if damaged_on_the_way(verdict.issues, bytes(request["photo"])):
        return None
    analysis = verdict.analysis
    issues = list(verdict.issues)
    details: dict[str, Any] = {"stage": stage, **evidence}
    band = details.get("band")
    signals = list(details.get("replay_signals") or [])
    chosen: str | None = None
    if stage == "challenge":
        details["challenge"] = request.get("challenge") or (first.challenge if first else None)
        if issues:
            decision = "rejected"
        elif first is None:
            decision, details["challenge_result"] = "challenge_failed", "expired"
        elif not details["checks"]["shown"]:
            decision = "challenge_failed"
            details["challenge_result"] = details["checks"]["reason"]
        elif band == "reject" or details.get("band_pair") == "reject":
            decision, details["challenge_result"] = "challenge_failed", "mismatch"
        elif band == "review" or details.get("band_pair") == "review" or signals:
            decision, details["challenge_result"] = "review", "shown"
        else:
            decision, details["challenge_result"] = "passed", "shown"
    elif issues:
        decision = "rejected"
    elif band == "reject":
        decision = "failed"
    elif band == "review" or signals:
        decision = "review"
    elif challenge_on:
        decision = "matched"
        chosen = liveness.choose(request.get("poses") or deps.settings.face.challenge_poses)
        details["challenge"] = chosen
    else:
        decision = "passed"
    # A photo seen before (passed or matched already, or sent for someone else) is not
    # accepted: it goes to a person for review (the family flow).
    reused = await find_reused_photo(deps.db, analysis.photo_hash, pensioner_id,
                                     exclude_attempt=first.attempt_id if first else None)
    if reused is not None and decision in ("passed", "matched", "review"):
        decision = "flagged"
    photo_path, expires = deps.photos.save("attempts", analysis.image)
    record = AttemptRecord(
        pensioner_id=pensioner_id, channel=str(request.get("channel") or ""),
        chat_user=str(request.get("chat_user") or ""), proxy=bool(request.get("proxy")),
        relationship=request.get("relationship"), quality_codes=issues,
        distance=verdict.distance, threshold=verdict.threshold, decision=decision,
        photo_path=photo_path, photo_hash=analysis.photo_hash, photo_expires_at=expires,
        details={k: v for k, v in details.items() if k not in ("shape", "embedding")})
    attempt_id = await record_attempt(deps.db, record, id_number=request.get("id_number"),
                                      request_id=request_id)
    if decision == "matched" and chosen is not None and verdict.analysis.embedding is not None:
        await liveness.remember(deps.redis, request_id, liveness.First(
            embedding=list(verdict.analysis.embedding), pose=details.get("pose") or {},
            shape=list(details.get("shape") or []), photo_hash=analysis.photo_hash,
            challenge=chosen, attempt_id=attempt_id), deps.settings.face.challenge_ttl_s + 60)
    result = {**base, "decision": decision, "issues": issues, "distance": verdict.distance,
              "threshold": verdict.threshold, "attempt_id": attempt_id,
              "photo_hash": analysis.photo_hash, "stage": stage,
              "challenge": details.get("challenge"),
              "challenge_result": details.get("challenge_result"), "band": band,
              "distance_pair": details.get("distance_pair"), "replay_signals": signals,
              "accept_below": bounds[0], "reject_above": bounds[1]}
    if reused is not None:
        other = reused.pensioner_id != pensioner_id
        result.update(reused_attempt=reused.id, reused_other_pensioner=other)
        await deps.db.audit(
            f"face:{record.channel}", "photo_reused", target=f"pensioner:{pensioner_id}",
            attempt_id=attempt_id, reused_attempt=reused.id, other_pensioner=other,
            decision=decision, proxy=record.proxy, request_id=request_id,
            proxy_key=f"{record.channel}:{record.chat_user}" if record.proxy else None)
    return result


def _measure(engine: FaceEngine, reference: list[float], photo: bytes, stage: str,
             first: Any, bounds: tuple[float, float]) -> tuple[Any, dict[str, Any]]:
    """The blocking part (executor): verify, the grey zone, pose, replay signals, checks."""
    evidence: dict[str, Any] = {}
    if stage == "challenge":
        # The challenge photo is turned on purpose: every gate code but not_frontal applies.
        analysis = engine.analyse(photo, strict=False)
        issues = [code for code in analysis.issues if code != "not_frontal"]
        if analysis.embedding is None and not issues:
            issues = ["no_face"]
        distance = (round(cosine_distance(reference, analysis.embedding), 6)
                    if analysis.embedding is not None and not issues else None)
        verdict = Verdict(False, distance, engine.threshold, issues, analysis)
    else:
        verdict = engine.verify(reference, photo)
        analysis = verdict.analysis
    if verdict.issues or verdict.distance is None:
        return verdict, evidence
    evidence["distance_template"] = verdict.distance
    evidence["band"] = band(verdict.distance, *bounds)
    pose = engine.pose(analysis)
    if pose is not None:
        evidence["pose"] = pose.as_dict()
        if pose.points is not None:
            evidence["shape"] = liveness.shape_of(pose.points)
    evidence["replay_signals"], evidence["replay"] = engine.replay_signals(analysis)
    if stage == "challenge" and first is not None and analysis.embedding is not None:
        pair = round(cosine_distance(first.embedding, analysis.embedding), 6)
        evidence["distance_pair"] = pair
        evidence["band_pair"] = band(pair, *bounds)
        judged = liveness.judge(first, evidence.get("pose"), evidence.get("shape"),
                                analysis.photo_hash)
        evidence["checks"] = {"shown": judged.shown, "reason": judged.reason,
                              "same_photo": judged.same_photo, **judged.measured}
        evidence["pose_before"] = first.pose
    return verdict, evidence


async def verify_selfie(ctx: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The arq job. A failure (database down, a bug) is retried with a growing delay; after
    the last try the chat is told to send the photo again, so nobody waits forever."""
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
    deps: WorkerDeps = ctx["deps"]
    removed = await cleanup_expired(deps.db, deps.photos, datetime.now(UTC))
    return removed + await asyncio.to_thread(purge_case_photos, deps.settings.storage.data_dir,
                                             deps.settings.face.photo_retention_days)


async def send_reminders(ctx: dict[str, Any]) -> dict[str, int]:
    """The arq cron job: one reminder pass (bot/records/reminders.py), as ``bot reminders send``.

    The deliverer (which knows the channels) comes from the assembly, through ``build_worker``."""
    deps: WorkerDeps = ctx["deps"]
    if deps.deliverer_factory is None:
        return {"due": 0, "sent": 0, "failed": 0, "skipped": 0}
    deliverer = deps.deliverer_factory(deps.settings, deps.redis)
    try:
        result = await run_pass(deps.settings, deps.db, deps.redis, deliverer=deliverer)
    finally:
        await deliverer.close()
    return result.counts()


async def start_deps(settings: Settings, redis: aioredis.Redis,
                     engine: FaceEngine | None = None) -> WorkerDeps:
    """Load the model (a clear error if its weights are missing) and connect the database."""
    if engine is None:
        engine = await asyncio.to_thread(FaceEngine.from_settings, settings)
    await asyncio.to_thread(predictor, engine.home)  # the 68 landmarks, before the first job
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(migrate, settings.database_url)
    return WorkerDeps(settings=settings, engine=engine,
                      db=Database(settings.database_url, pool_size=WORKER_POOL_SIZE),
                      redis=redis, photos=photo_store(settings),
                      executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="face"))


async def stop_deps(deps: WorkerDeps) -> None:
    deps.executor.shutdown(wait=False, cancel_futures=True)
    await deps.db.dispose()


class PromptWorker(Worker):
    """arq's worker, but it takes the next job as soon as a running one finishes.

    arq looks for jobs once per ``poll_delay``: when a selfie is done, the worker would wait
    half a poll on average before it starts the next one, while the queue is full. Here a
    poll that finds the worker full waits for a running job to end (or for ``HEARTBEAT_S``,
    so the health check and abort checks still run) and polls again at once."""

    async def _poll_iteration(self) -> None:
        while True:
            await super()._poll_iteration()
            running = [task for task in self.tasks.values() if not task.done()]
            if not running or self.job_counter < self.max_jobs:
                return  # room for a job and none queued: arq's next poll looks again
            await asyncio.wait(running, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)


def build_worker(settings: Settings, redis_url: str, *, burst: bool = False,
                 engine: FaceEngine | None = None, handle_signals: bool = True,
                 deliverer_factory: DelivererFactory | None = None) -> Any:
    """An arq worker for the face queue (one job at a time: the work is CPU-bound).

    Two jobs at a time (one measured while the other is at the database) were tried on
    2026-12-05: no measurable gain in `bench peak`, so one it stays."""
    holder: dict[str, WorkerDeps] = {}

    async def on_startup(ctx: dict[str, Any]) -> None:
        holder["deps"] = ctx["deps"] = await start_deps(settings, ctx["redis"], engine)
        holder["deps"].deliverer_factory = deliverer_factory
        log.info("face worker ready", extra={"pid": os.getpid()})

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if "deps" in holder:
            await stop_deps(holder["deps"])

    timeout = settings.face.job_timeout_s
    return PromptWorker(
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
        keep_result=0, poll_delay=0.1, handle_signals=handle_signals,
        health_check_interval=60)
