"""Back-pressure: when selfies queue up, people hear their place and the expected wait.

Through the fake channel, with the real Redis queue (arq's sorted set ``face:queue``) and
results stream; the queue is filled by hand so no model is needed.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from arq import create_pool, func
from arq.connections import RedisSettings
from PIL import Image

from bot.core.services import FaceBacklog
from bot.core.storage.models import CertificationAttempt
from bot.face_service import FaceService, attach
from bot.records.attempts import save_template
from bot.services import Services
from dialogs.face_queue import verifying_text, wait_words
from face.jobs import QUEUE, RESULTS_STREAM, PromptWorker
from nlu.entities import with_check_digit
from tests.conftest import Backends, TestBot, make_settings

ID_NUMBER = with_check_digit("63010219520304001")


@pytest.fixture
def settings(tmp_path: Path, clean_backends: Backends) -> Any:
    return make_settings(tmp_path, clean_backends, **{"face.challenge": False})


@pytest.fixture
async def face(services: Services) -> FaceService:
    return attach(services)


@pytest.fixture
async def enrolled(services: Services) -> int:
    pensioner = await services.registry.register(ID_NUMBER, "马秀英")
    await save_template(services.db, pensioner.id, [0.1] * 128, "Dlib", None, None)
    return pensioner.id


def selfie() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (960, 1280), (128, 120, 110)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


async def busy_queue(services: Services, waiting: int, per_second: float, job_s: float = 2.0) -> None:
    """``waiting`` selfies in the queue; verdicts came at ``per_second`` for the last 30 s."""
    redis = services.redis
    now_ms = int(time.time() * 1000)
    if waiting:
        await redis.zadd(QUEUE, {f"arq:job:other-{i}": now_ms - 60_000 + i for i in range(waiting)})
    gap = int(1000 / per_second)
    for stamp in range(now_ms - 30_000, now_ms, gap):
        await redis.xadd(RESULTS_STREAM, {"data": json.dumps({"seconds": job_s})}, id=f"{stamp}-0")


async def to_selfie(bot: TestBot) -> None:
    await bot.say("我想在这里刷脸认证")
    await bot.say(ID_NUMBER)
    await bot.say("马秀英")
    assert "正脸照片" in bot.text


def test_waits_in_plain_words() -> None:
    assert wait_words(4) == "大约10秒"
    assert wait_words(41) == "大约50秒"
    assert wait_words(61) == "大约2分钟"
    assert wait_words(3 * 3600 + 5) == "3个多小时"


async def test_short_queue_says_a_few_seconds(testbot: TestBot, face: FaceService, enrolled: int) -> None:
    await busy_queue(testbot.services, waiting=3, per_second=5)
    await to_selfie(testbot)
    await testbot.say(image=selfie())
    assert "正在核验，请稍等几秒" in testbot.text and "排队" not in testbot.text


async def test_long_queue_tells_place_and_wait_then_what_is_left(testbot: TestBot, face: FaceService,
                                                                enrolled: int) -> None:
    await busy_queue(testbot.services, waiting=40, per_second=1)
    await to_selfie(testbot)
    await testbot.say(image=selfie())
    text = testbot.text
    # 40 ahead at about one verdict a second: about 41 s, said as 大约50秒
    assert "前面大约还有40位" in text and "大约50秒" in text, text
    assert "不用重新发照片" in text
    assert await testbot.services.redis.zcard(QUEUE) == 41  # queued behind the others
    await testbot.say("好了吗")
    assert "还在排队核验" in testbot.text and "秒" in testbot.text and "位" in testbot.text


async def test_pace_is_never_slower_than_one_worker(face: FaceService, services: Services) -> None:
    """Few arrivals make a slow recent rate; a worker's time per selfie bounds the estimate."""
    await busy_queue(services, waiting=9, per_second=0.2, job_s=0.5)
    backlog = await face.backlog()
    assert backlog.waiting == 9 and backlog.wait_s == pytest.approx(10 * 0.5)


async def test_no_history_means_unknown_wait(face: FaceService, services: Services) -> None:
    await services.redis.zadd(QUEUE, {"arq:job:x": 1})
    assert await face.backlog() == FaceBacklog(1, None)


async def test_hopeless_queue_is_not_joined_and_costs_no_attempt(testbot: TestBot, face: FaceService,
                                                                 enrolled: int) -> None:
    await busy_queue(testbot.services, waiting=4000, per_second=1)
    await to_selfie(testbot)
    await testbot.say(image=selfie())
    assert "人太多" in testbot.text and "不算次数" in testbot.text and "个多小时" in testbot.text
    assert await testbot.services.redis.zcard(QUEUE) == 4000
    async with testbot.services.db.session() as session:
        assert await session.get(CertificationAttempt, 1) is None
    conv = await testbot.conversation()
    assert conv.frame is not None and conv.frame.state == "selfie"


def test_verifying_text_counts_down() -> None:
    slots = {"face_eta": time.time() + 100, "face_ahead": 50, "face_wait": 100.0}
    assert "前面大约还有50位" in verifying_text(slots, 20)
    slots["face_eta"] = time.time() + 40
    assert verifying_text(slots, 20, just_sent=False).startswith(
        "还在排队核验，您前面大约还有20位，估计还要等大约40秒")
    slots["face_eta"] = time.time() + 3
    assert "请稍等几秒" in verifying_text(slots, 20)


async def test_queued_job_logs_without_photo_or_personal_data(testbot: TestBot, face: FaceService,
                                                              enrolled: int) -> None:
    """arq logs each job it starts as ``repr`` of its arguments (cut to 80 characters): the
    selfie request must name itself only, not render the photo (MBs of text per job, on
    the worker's CPU) nor the chat and the ID number."""
    from arq.jobs import deserialize_job
    from arq.utils import args_to_string

    await to_selfie(testbot)
    await testbot.say(image=selfie())
    keys = await testbot.services.redis.keys("arq:job:face:*")
    assert len(keys) == 1
    job = deserialize_job(await testbot.services.redis.get(keys[0]))
    (request,) = job.args
    assert request["id_number"] == ID_NUMBER and len(request["photo"]) > 10_000  # all still there
    assert len(repr(job.args)) < 200
    logged = args_to_string(job.args, job.kwargs)
    assert ID_NUMBER not in logged and testbot.user_id not in logged
    assert logged.startswith("<selfie request ")


async def test_the_worker_takes_the_next_job_as_soon_as_one_is_done(clean_backends: Backends) -> None:
    """arq alone picks a job only at its next poll: with a 5 s poll, three queued jobs
    would take about 10 s. The face worker takes each next one when the last is done."""
    done: list[float] = []

    async def job(ctx: dict[str, Any], number: int) -> int:
        await asyncio.sleep(0.05)
        done.append(time.monotonic())
        return number

    settings = RedisSettings.from_dsn(str(clean_backends.redis_url))
    pool = await create_pool(settings)
    for number in range(3):
        await pool.enqueue_job("job", number, _queue_name="prompt:test")
    worker = PromptWorker(functions=[func(job, name="job")], queue_name="prompt:test",
                          redis_settings=settings, max_jobs=1, poll_delay=5.0, keep_result=0,
                          handle_signals=False)
    started = time.monotonic()
    running = asyncio.create_task(worker.main())
    try:
        for _ in range(100):
            if len(done) == 3:
                break
            await asyncio.sleep(0.05)
    finally:
        running.cancel()
        await worker.close()
        await pool.aclose()
    assert len(done) == 3
    assert done[-1] - started < 3  # not one job per 5 s poll
