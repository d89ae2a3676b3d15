"""The province's peak hour on one box: selfies and chat together, end to end.

    python -m bench peak [--seconds 60] [--selfies-per-s 3] [--users 100] [--servers 1]
                         [--workers 2] [--find-max]

Starts real ``python -m bot serve --no-worker`` processes and ``python -m bot worker``
processes on this machine, with the local Redis (one database, flushed: ``--redis-db``, 12)
and a scratch database on the local PostgreSQL (created, then dropped). It enrols the
pensioners it needs: DeepFace computes the reference embedding of one photo per person of
``../shared/faces`` (the real enrolment, ``face.enrol``), and each simulated pensioner gets
one of those templates. Then, at the same time:

- ``--users`` chat users type the held-out NLU sentences (``nlu/data/test.yml``) through
  ``POST /api/chat``, about one message a second each, as ``bench.chat`` does;
- certify users arrive at random (Poisson) at ``--selfies-per-s`` a second. Each one does
  the whole web flow: a session, "刷脸认证", the ID number, the name, the upload of a selfie
  (multipart, 0.3-1.5 MB: a photo of ``../shared/faces`` cropped, turned, mirrored, made
  lighter or darker and re-encoded in code, each one different; 15 % impostors, i.e. another
  person's photo) and then waiting for the verdict on ``GET /api/chat/updates?wait=20``
  (long polling, as the web page does; ``--poll-s S`` polls every S seconds instead). The pose challenge is off (``FACE_CHALLENGE=off``): one selfie per certification.

Verdict time is from the start of the upload to the poll that brings the verdict.
The last line is one JSON object (see ``summary``). ``--find-max`` first measures the
one-core rate of ``bench.face`` (``python -m bench.face --rate-only``, pinned to one core),
then runs steps of ``--seconds`` at rising or falling rates with ``--users`` chat users and
reports the highest rate whose verdict p95 stayed under ``--p95-limit`` (10 s) with no error.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench import chat
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
FACES = Path(os.environ.get("FACES_DIR", ROOT.parent / "shared" / "faces"))
# The photos DeepFace enrols (each one a template) -> whose face, and the other photos of that
# person that genuine selfies are made from (small ones are left out: scaled up to a phone's
# size they are too blurry to pass the quality gate).
TEMPLATES = {
    "obama/obama1.jpg": ("obama", ["obama/obama3.jpg", "obama/obama2.jpg"]),
    "obama/obama2.jpg": ("obama", ["obama/obama1.jpg"]),
    "biden/biden2.jpg": ("biden", ["biden/biden1.jpg"]),
    "biden/biden1.jpg": ("biden", ["biden/biden2.jpg"]),
    "kit_harington/kit2.jpg": ("kit_harington", ["kit_harington/kit1.jpg"]),
    "rose_leslie/rose2.jpg": ("rose_leslie", ["rose_leslie/rose1.jpg"]),
    "rose_leslie/rose1.jpg": ("rose_leslie", ["rose_leslie/rose2.jpg"]),
    "alex_lacamoire/alex2.png": ("alex_lacamoire", ["alex_lacamoire/alex1.jpg"]),
}
STRANGERS = ["lin_manuel_miranda/lin1.png"]  # never enrolled: impostors only
START_TEXT = "我想在这里刷脸认证"
# What the user reads in a verdict (dialogs/certify.py), to tell the verdict from other pushes.
VERDICTS = {"认证成功": "passed", "对不上": "failed", "这次没有通过": "rejected",
            "不能完全确定": "review", "以前已经用过": "flagged", "还差最后一步": "matched",
            "系统出了点问题": "error", "没有完整收到": "incomplete", "还没有这位老人的人脸模型": "not_enrolled"}
QUEUE_NOTICE = "排队核验"  # the back-pressure notice (dialogs/face_queue.py): not a verdict
MIN_HASH_BITS = 7  # selfies differ by more dHash bits than the reuse check's 6 (computed as the worker does)
SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗"
GIVEN = "秀英桂兰玉兰凤英建华德明淑珍海军国庆志强春梅永福文华金花"


# ---------------------------------------------------------------- selfies made in code


@dataclass
class Selfie:
    person: str       # whose face is in it
    data: bytes       # the JPEG as uploaded
    source: str
    claims: str = ""       # the template (enrolment photo) of the pensioner the sender names
    impostor: bool = False  # that template is someone else's face


@functools.cache
def _grain() -> tuple[Any, Any]:
    """A sensor's grain (Gaussian, sigma 3) big enough for any selfie, as the two uint8 planes
    to add and to subtract (saturating OpenCV arithmetic), made once per pool process."""
    import numpy as np

    noise = np.random.default_rng(7).normal(0, 3.0, (2700, 2700, 3))
    return (np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8))


@functools.cache
def _source(name: str) -> Any:
    import numpy as np
    from PIL import Image, ImageOps

    return np.asarray(ImageOps.exif_transpose(Image.open(FACES / name)).convert("RGB"))


def _variant(job: tuple[str, str, int]) -> tuple[str, str, bytes, str]:
    """One phone-sized JPEG made from a shared photo (runs in a pool process): mirrored or
    not, cropped to 80-100 %, scaled to 1600-2600 px, turned up to 5 degrees (one affine
    warp), lighter or darker, lit more from one side, with a sensor's grain, JPEG quality 88-95; and its dHash as
    the worker will compute it (on the <= 1024 px image)."""
    import cv2
    import numpy as np

    from bot.core.images import MAX_SIDE
    from face.engine import dhash

    person, name, seed = job
    rng = random.Random(seed)
    image = _source(name)
    h, w = image.shape[:2]
    keep_w, keep_h = rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0)
    left, top = rng.uniform(0, 1 - keep_w) * w, rng.uniform(0, 1 - keep_h) * h
    crop_w, crop_h = keep_w * w, keep_h * h
    scale = rng.uniform(1600, 2600) / max(crop_w, crop_h)
    size = (round(crop_w * scale), round(crop_h * scale))
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    # source -> output: move the crop's centre to the origin, mirror, scale, turn, re-centre
    centre = np.array([left + crop_w / 2, top + crop_h / 2])
    angle = np.deg2rad(rng.uniform(-5, 5))
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = turn @ np.diag([mirror * scale, scale])
    offset = np.array([size[0] / 2, size[1] / 2]) - linear @ centre
    matrix = np.hstack([linear, offset[:, None]])
    image = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    image = cv2.convertScaleAbs(image, alpha=rng.uniform(0.92, 1.08))
    # light falling from one side (a window): up to 12 % brighter there than on the other
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * np.linspace(-1, 1, size[0])[None, :]
            + np.sin(direction) * np.linspace(-1, 1, size[1])[:, None])
    light = (1 + rng.uniform(0.04, 0.12) * ramp / 2).astype(np.float32)
    image = cv2.convertScaleAbs(cv2.multiply(image.astype(np.float32), cv2.merge([light] * 3)))
    plus, minus = _grain()
    y, x = rng.randrange(plus.shape[0] - size[1] + 1), rng.randrange(plus.shape[1] - size[0] + 1)
    image = cv2.subtract(cv2.add(image, plus[y:y + size[1], x:x + size[0]]),
                         minus[y:y + size[1], x:x + size[0]])
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, rng.randint(88, 95)])
    assert ok
    small = max(size) / MAX_SIDE
    digest = dhash(np.asarray(cv2.resize(image, (round(size[0] / small), round(size[1] / small)),
                                         interpolation=cv2.INTER_AREA), dtype=np.uint8))
    return person, name, encoded.tobytes(), digest


def make_selfies(count: int, impostor_share: float, seed: int) -> list[Selfie]:
    """``count`` distinct selfies; the order says who claims to be whom (see ``claims``)."""
    rng = random.Random(seed)
    genuine = [(key, name) for key, (_, names) in TEMPLATES.items() for name in names]
    others = genuine + [("stranger", name) for name in STRANGERS]
    accepted: list[Selfie] = []
    hashes: list[int] = []
    attempts = 0
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        while len(accepted) < count and attempts < count * 4:
            batch = []
            for _ in range(min(64, 2 * (count - len(accepted)) + 4)):
                key, name = rng.choice(others if rng.random() < 0.1 else genuine)
                batch.append((key, name, rng.randrange(2**31)))
            attempts += len(batch)
            for key, name, data, digest in pool.map(_variant, batch):
                value = int(digest, 16)
                if all(bin(value ^ other).count("1") >= MIN_HASH_BITS for other in hashes):
                    hashes.append(value)
                    person = TEMPLATES[key][0] if key in TEMPLATES else "stranger"
                    impostor = person == "stranger" or rng.random() < impostor_share
                    claims = rng.choice([k for k, (p, _) in TEMPLATES.items() if p != person]) \
                        if impostor else key
                    accepted.append(Selfie(person, data, name, claims, impostor))
                if len(accepted) >= count:
                    break
    print(f"bench peak: {len(accepted)} distinct selfies (of {count} wanted) from {attempts} variants",
          file=sys.stderr, flush=True)
    rng.shuffle(accepted)
    return accepted


# ---------------------------------------------------------------- the stack


@dataclass
class Pensioner:
    id_number: str
    name: str
    template: str  # the enrolment photo of their template


@dataclass
class Stack:
    redis_url: str
    database_url: str
    data_dir: Path
    ports: list[int]
    servers: list[subprocess.Popen[bytes]]
    workers: list[subprocess.Popen[bytes]]
    env: dict[str, str]
    pensioners: dict[str, list[Pensioner]] = field(default_factory=dict)  # by template

    def claimant(self, selfie: Selfie) -> Pensioner:
        """Who the selfie's sender says they are (someone else's face for an impostor)."""
        return self.pensioners[selfie.claims].pop()

    def processes(self) -> list[psutil.Process]:
        return [psutil.Process(p.pid) for p in self.servers + self.workers]


def id_numbers(start: int) -> Iterator[str]:
    import datetime as dt

    from nlu.entities import with_check_digit

    serial = start
    while True:
        serial += 1
        born = dt.date(1940, 1, 1) + dt.timedelta(days=(serial // 900) % 7000)
        yield with_check_digit(f"630102{born:%Y%m%d}{100 + serial % 900:03d}")


async def enrol_pensioners(database_url: str, needed: Counter[str], seed: int) -> list[Pensioner]:
    """DeepFace enrols each template photo once; ``needed[photo]`` pensioners share each."""
    from sqlalchemy import insert

    from bot.core.storage.db import Database, migrate
    from bot.core.storage.models import FaceTemplate
    from bot.core.storage.models import Pensioner as PensionerRow
    from bot.records.attempts import PhotoStore, get_template
    from face.engine import MODEL_NAME, FaceEngine
    from face.enrol import enrol

    await asyncio.to_thread(migrate, database_url)
    db = Database(database_url)
    engine = await asyncio.to_thread(FaceEngine)
    rng = random.Random(seed)
    numbers = id_numbers(seed * 10_000)
    templates: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            photos = PhotoStore(Path(tmp), 0)
            for reference in TEMPLATES:
                name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
                result = await enrol(db, engine, photos, next(numbers), name,
                                     (FACES / reference).read_bytes(), actor="bench")
                if not result.ok or result.pensioner_id is None:
                    raise RuntimeError(f"enrolment of {reference} failed: {result.issues}")
                template = await get_template(db, result.pensioner_id)
                assert template is not None
                templates[reference] = list(template.embedding)
        made = [Pensioner(next(numbers), rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN), key)
                for key, count in needed.items() for _ in range(count)]
        async with db.session() as session:
            for start in range(0, len(made), 500):
                chunk = made[start:start + 500]
                rows = await session.execute(
                    insert(PensionerRow).returning(PensionerRow.id),
                    [{"id_number": p.id_number, "name": p.name, "status": "active"} for p in chunk])
                ids = [row[0] for row in rows]
                await session.execute(insert(FaceTemplate), [
                    {"pensioner_id": pid, "model": MODEL_NAME, "embedding": templates[p.template]}
                    for pid, p in zip(ids, chunk, strict=True)])
    finally:
        await db.dispose()
    return made


def redis_for(db_number: int) -> str:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=db_number, socket_connect_timeout=1).flushdb()
    return f"redis://127.0.0.1:6379/{db_number}"


def start_stack(args: argparse.Namespace) -> Stack:
    from tests.services import create_postgres_database

    database_url = create_postgres_database()
    if database_url is None:
        raise SystemExit("bench peak needs the local PostgreSQL on 127.0.0.1:5432")
    redis_url = redis_for(args.redis_db)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-peak-"))
    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=database_url, BOT_DATA_DIR=str(data_dir),
               LOG_LEVEL="INFO", FACE_CHALLENGE="off", PHOTO_RETENTION_DAYS="30",
               WECHAT_TOKEN="benchtoken", WECHAT_APP_ID="wxbench", WECHAT_APP_SECRET="x",
               WECHAT_API_BASE="http://127.0.0.1:9/",
               # every simulated user comes from loopback: no per-address limits (as bench.chat)
               WEB_ADDRESS_LIMITS_EXEMPT="127.0.0.0/8,::1/128")
    if args.worker_nice is not None:
        env["FACE_WORKER_NICE"] = str(args.worker_nice)
    ports = [free_port() for _ in range(args.servers)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": ROOT}
    servers = [subprocess.Popen([sys.executable, "-m", "bot", "serve", "--no-worker"],
                                env=dict(env, PORT=str(port)), **quiet)  # type: ignore[call-overload]
               for port in ports]
    workers = []
    for index in range(args.workers):  # their log tells when the model is loaded
        log = open(data_dir / f"worker{index}.log", "wb")  # noqa: SIM115 - closed with the process
        workers.append(subprocess.Popen([sys.executable, "-m", "bot", "worker"], env=env, cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=log))
        log.close()
    return Stack(redis_url, database_url, data_dir, ports, servers, workers, env)


def stop_stack(stack: Stack) -> None:
    import shutil

    from tests.services import drop_postgres_database

    for process in stack.servers + stack.workers:
        if process.poll() is None:
            process.terminate()
    for process in stack.servers + stack.workers:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    drop_postgres_database(stack.database_url)
    shutil.rmtree(stack.data_dir, ignore_errors=True)


async def wait_ready(stack: Stack, session: aiohttp.ClientSession) -> None:
    """Servers answer /healthz and every worker has loaded its model (its log says so)."""
    await chat.wait_healthy(session, stack.ports)
    logs = [stack.data_dir / f"worker{index}.log" for index in range(len(stack.workers))]
    for _ in range(2400):
        if any(w.poll() is not None for w in stack.workers):
            raise RuntimeError(f"a face worker exited at start-up; see {stack.data_dir}")
        if all(b"face worker ready" in log.read_bytes() for log in logs):
            return
        await asyncio.sleep(0.25)
    raise RuntimeError("face workers did not start")


async def queue_length(redis_url: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        return int(await client.zcard("face:queue"))
    finally:
        await client.aclose()


# ---------------------------------------------------------------- one phase of load


@dataclass
class Measured:
    chat: list[float] = field(default_factory=list)
    chat_errors: int = 0
    verdicts: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    offered: int = 0
    upload_ms: list[float] = field(default_factory=list)
    queue_notices: int = 0
    upload_bytes: list[int] = field(default_factory=list)


async def _post(session: aiohttp.ClientSession, port: int, user: str, text: str) -> str | None:
    async with session.post(f"http://127.0.0.1:{port}/api/chat",
                            json={"user_id": user, "text": text}) as response:
        return await response.text() if response.status == 200 else None


async def certify_user(session: aiohttp.ClientSession, port: int, pensioner: Pensioner, selfie: Selfie,
                       out: Measured, poll_s: float, verdict_timeout: float) -> None:
    """The whole web flow for one pensioner; records the verdict time or what went wrong."""
    try:
        async with session.post(f"http://127.0.0.1:{port}/api/chat/session") as response:
            if response.status != 200:
                out.errors["session"] += 1
                return
            user = (await response.json())["user_id"]
        for text, expect in ((START_TEXT, "身份证"), (pensioner.id_number, "姓名"),
                             (pensioner.name, "照片")):
            answer = await _post(session, port, user, text)
            if answer is None or expect not in answer:
                out.errors[f"flow:{expect}"] += 1
                return
        form = aiohttp.FormData()
        form.add_field("user_id", user)
        form.add_field("image", selfie.data, filename="IMG_0001.jpg", content_type="image/jpeg")
        started = time.perf_counter()
        async with session.post(f"http://127.0.0.1:{port}/api/chat", data=form) as response:
            body = await response.text()
        out.upload_ms.append((time.perf_counter() - started) * 1000)
        out.upload_bytes.append(len(selfie.data))
        if response.status != 200 or "核验" not in body:
            out.errors["upload"] += 1
            return
        out.queue_notices += QUEUE_NOTICE in body
        deadline = started + verdict_timeout
        while time.perf_counter() < deadline:
            params = {"user_id": user}
            if poll_s:  # a page that polls
                await asyncio.sleep(poll_s)
            else:  # long polling, as the web page does
                params["wait"] = str(round(max(0.0, min(20.0, deadline - time.perf_counter())), 1))
            async with session.get(f"http://127.0.0.1:{port}/api/chat/updates",
                                   params=params) as response:
                if response.status != 200:
                    out.errors["updates"] += 1
                    continue
                replies = (await response.json())["replies"]
            text = "\n".join(str(reply.get("text", "")) for reply in replies)
            decision = next((d for mark, d in VERDICTS.items() if mark in text), None)
            if decision is None:
                out.queue_notices += QUEUE_NOTICE in text
                continue
            out.verdicts.append(time.perf_counter() - started)
            out.outcomes[decision] += 1
            expected = "failed" if selfie.impostor else "passed"
            if decision != expected:
                out.unexpected[f"{expected}->{decision} ({selfie.source})"] += 1
            return
        out.errors["no_verdict"] += 1
    except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
        out.errors[exc.__class__.__name__] += 1


async def chat_user(session: aiohttp.ClientSession, port: int, index: int, until: float,
                    texts: list[str], out: Measured) -> None:
    rng = random.Random(index)
    await asyncio.sleep(rng.uniform(0, 1.0))
    user = None
    step = 0
    while time.perf_counter() < until:
        text = chat.message_for(rng, step, texts)
        started = time.perf_counter()
        try:
            if user is None:
                async with session.post(f"http://127.0.0.1:{port}/api/chat/session") as response:
                    user = (await response.json())["user_id"] if response.status == 200 else None
            answer = await _post(session, port, user, text) if user else None
        except (TimeoutError, aiohttp.ClientError, ValueError):
            answer = None
        out.chat.append(time.perf_counter() - started)
        out.chat_errors += answer is None
        step += 1
        if answer and chat.QUEUED_MARK in answer:  # waiting for a person: give up, as bench.chat users do
            await _post(session, port, user, "算了") if user else None
        await asyncio.sleep(rng.uniform(0.5, 1.5))


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def busy_seconds() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq
                 + getattr(times, "steal", 0.0))


async def phase(stack: Stack, selfies: Iterator[Selfie], rate: float, seconds: float, users: int,
                poll_s: float, verdict_timeout: float, seed: int) -> dict[str, Any]:
    """Chat users and certify users together for ``seconds``; then the verdicts still due."""
    out = Measured()
    texts = chat.free_texts()
    rng = random.Random(seed)
    servers = [psutil.Process(p.pid) for p in stack.servers]
    workers = [psutil.Process(p.pid) for p in stack.workers]
    me = psutil.Process()
    loads: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        server_cpu, worker_cpu = cpu_seconds(servers), cpu_seconds(workers)
        own_cpu, busy = cpu_seconds([me]), busy_seconds()
        started = time.perf_counter()
        until = started + seconds
        chatting = [asyncio.create_task(chat_user(session, stack.ports[i % len(stack.ports)], i, until,
                                                  texts, out)) for i in range(users)]

        async def sample_load() -> None:
            while True:
                loads.append(os.getloadavg()[0])
                await asyncio.sleep(2)

        sampler = asyncio.create_task(sample_load())
        certifying: list[asyncio.Task[None]] = []
        at = started + rng.expovariate(rate)
        while at < until:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            selfie = next(selfies, None)
            if selfie is None:  # more arrivals than selfies made: reported, not hidden
                out.errors["out_of_selfies"] += 1
                break
            pensioner = stack.claimant(selfie)
            out.offered += 1
            certifying.append(asyncio.create_task(certify_user(
                session, stack.ports[out.offered % len(stack.ports)], pensioner, selfie, out,
                poll_s, verdict_timeout)))
            at += rng.expovariate(rate)
        await asyncio.gather(*chatting)
        window = time.perf_counter() - started
        await asyncio.gather(*certifying)  # each ends with a verdict or after verdict_timeout
        drained = time.perf_counter() - started
        sampler.cancel()
        server_cpu = cpu_seconds(servers) - server_cpu
        worker_cpu = cpu_seconds(workers) - worker_cpu
        own_cpu = cpu_seconds([me]) - own_cpu
        busy = busy_seconds() - busy
    others = max(0.0, busy - server_cpu - worker_cpu - own_cpu)
    return summarise(out, rate, seconds, window, drained, users, servers, workers, server_cpu,
                     worker_cpu, own_cpu, others, loads)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def _rss(processes: list[psutil.Process]) -> list[float]:
    sizes = []
    for process in processes:
        try:
            sizes.append(round(process.memory_info().rss / 2**20, 1))
        except psutil.NoSuchProcess:
            sizes.append(0.0)
    return sizes


def summarise(out: Measured, rate: float, seconds: float, window: float, drained: float, users: int,
              servers: list[psutil.Process], workers: list[psutil.Process], server_cpu: float,
              worker_cpu: float, own_cpu: float, others: float, loads: list[float]) -> dict[str, Any]:
    done = len(out.verdicts)
    errors = out.chat_errors + sum(out.errors.values())
    chat_p50, chat_p99 = _pct(out.chat, 0.5), _pct(out.chat, 0.99)
    v50, v95 = _pct(out.verdicts, 0.5), _pct(out.verdicts, 0.95)
    server_rss, worker_rss = _rss(servers), _rss(workers)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "seconds": seconds, "users": users, "selfies_per_s_offered": rate,
        "servers": len(servers), "workers": len(workers), "challenge": False,
        "chat_messages": len(out.chat),
        "chat_errors": out.chat_errors,
        "upload_p50_ms": round(_pct(out.upload_ms, 0.5) or 0, 1),
        "upload_kb_median": round(statistics.median(out.upload_bytes) / 1024) if out.upload_bytes else None,
        "verdicts": dict(out.outcomes), "unexpected_verdicts": dict(out.unexpected),
        "certify_errors": dict(out.errors), "queue_notices": out.queue_notices,
        "window_s": round(window, 1), "drained_s": round(drained, 1),
        "server_cpu_s": round(server_cpu, 1), "worker_cpu_s": round(worker_cpu, 1),
        "load_generator_cpu_s": round(own_cpu, 1),
        "other_processes_cores": round(others / max(drained, 0.001), 2),
        "load_avg_1m_mean": round(statistics.mean(loads), 2) if loads else None,
        "load_avg_1m_max": round(max(loads), 2) if loads else None,
        "server_rss_mb_each": server_rss, "worker_rss_mb_each": worker_rss,
        # the goals' figures
        "chat_p50_ms": round(chat_p50 * 1000, 1) if chat_p50 is not None else None,
        "chat_p99_ms": round(chat_p99 * 1000, 1) if chat_p99 is not None else None,
        "verdict_p50_s": round(v50, 2) if v50 is not None else None,
        "verdict_p95_s": round(v95, 2) if v95 is not None else None,
        "selfies_offered": out.offered,
        "selfies_done": done,
        "selfies_per_s": round(done / window, 2) if window else None,
        "errors": errors,
        "server_rss_mb": round(sum(server_rss), 1),
        "worker_rss_mb": round(sum(worker_rss), 1),
        "cpu_s_per_certification": round(worker_cpu / done, 3) if done else None,
    }


# ---------------------------------------------------------------- commands


def one_core_rate() -> dict[str, Any]:
    """``bench.face``'s selfie rate on one core, in its own pinned process."""
    run = subprocess.run([sys.executable, "-m", "bench.face", "--rate-only"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, check=True)
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def holds(result: dict[str, Any], limit: float) -> bool:
    return (not result["errors"] and result["verdict_p95_s"] is not None
            and result["verdict_p95_s"] < limit and result["selfies_done"] == result["selfies_offered"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench peak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--selfies-per-s", type=float, default=3.0)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="face worker processes (default: one per core, niced)")
    parser.add_argument("--worker-nice", type=int, default=None,
                        help="nice level of the workers (default: face.worker_nice of config.yml)")
    parser.add_argument("--poll-s", type=float, default=0.0,
                        help="poll /api/chat/updates every S seconds (default 0: long polling, as the page)")
    parser.add_argument("--verdict-timeout", type=float, default=120.0)
    parser.add_argument("--impostors", type=float, default=0.15, help="share of impostor selfies")
    parser.add_argument("--redis-db", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--find-max", action="store_true",
                        help="the highest rate holding verdict p95 < --p95-limit, vs bench.face's one-core rate")
    parser.add_argument("--p95-limit", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=4, help="--find-max: how many rates to try")
    args = parser.parse_args(argv)
    if not (FACES / "pairs.csv").is_file():
        print(f"bench peak: no photos in {FACES}; skipped", file=sys.stderr)
        return {"skipped": f"no photos in {FACES}"}
    sys.path.insert(0, str(ROOT))
    chat.use_uvloop()
    reference: dict[str, Any] = {}
    if args.find_max:  # before our own processes start: its core to itself (but the box is shared)
        reference = one_core_rate()
        print(json.dumps({"bench_face_one_core": reference}), flush=True)
    max_rate = args.selfies_per_s
    if args.find_max:
        target = 0.6 * 2 * reference["ours_per_s"]
        max_rate = max(target * 1.5, args.selfies_per_s)
    expected = max_rate * args.seconds * (args.steps if args.find_max else 1)
    budget = int(expected + 5 * expected ** 0.5) + 20  # Poisson arrivals: five sigma more
    load_before = round(os.getloadavg()[0], 2)
    stack = start_stack(args)
    try:
        print(f"bench peak: making {budget} selfies and enrolling {budget} pensioners", file=sys.stderr, flush=True)
        made = make_selfies(budget, args.impostors, args.seed)
        selfies = iter(made)
        needed = Counter(selfie.claims for selfie in made)
        for pensioner in asyncio.run(enrol_pensioners(stack.database_url, needed, args.seed)):
            stack.pensioners.setdefault(pensioner.template, []).append(pensioner)

        async def ready() -> None:
            async with aiohttp.ClientSession() as session:
                await wait_ready(stack, session)

        asyncio.run(ready())

        def run(rate: float, step: int) -> dict[str, Any]:
            result = asyncio.run(phase(stack, selfies, rate, args.seconds, args.users, args.poll_s,
                                       args.verdict_timeout, args.seed + step))
            result["load_avg_1m_before"] = load_before
            print(json.dumps(result, ensure_ascii=False), flush=True)
            return result

        if not args.find_max:
            final = run(args.selfies_per_s, 0)
        else:
            final = find_max(args, run, target, reference)
    finally:
        stop_stack(stack)
    print(json.dumps(final, ensure_ascii=False), flush=True)
    return final


def find_max(args: argparse.Namespace, run: Any, target: float, reference: dict[str, Any]) -> dict[str, Any]:
    """Rates up from the goal while they hold, down while they do not; the best that held."""
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    rate = round(target, 1)
    tried: set[float] = set()
    for step in range(args.steps):
        tried.add(rate)
        result = run(rate, step + 1)
        ok = holds(result, args.p95_limit)
        steps.append({"rate": rate, "held": ok, "verdict_p95_s": result["verdict_p95_s"],
                      "selfies_per_s": result["selfies_per_s"], "errors": result["errors"],
                      "chat_p99_ms": result["chat_p99_ms"], "load_avg_1m_mean": result["load_avg_1m_mean"]})
        if ok and (best is None or rate > best["selfies_per_s_offered"]):
            best = result
        lower = [s["rate"] for s in steps if s["held"]]
        higher = [s["rate"] for s in steps if not s["held"]]
        if higher and lower:
            rate = round((max(lower) + min(higher)) / 2, 1)
        elif higher:
            rate = round(min(higher) * 0.75, 1)
        else:
            rate = round(max(lower) * 1.25, 1)
        if rate in tried:
            break
        time.sleep(2)
    one_core = reference["ours_per_s"]
    summary = dict(best or {"verdict_p95_s": None, "selfies_per_s": None})
    summary.update({
        "mode": "find-max", "users": args.users, "steps": steps,
        "bench_face_one_core_per_s": one_core, "goal_per_s": round(0.6 * 2 * one_core, 2),
        "highest_sustainable_per_s": best["selfies_per_s_offered"] if best else None,
        "goal_met": bool(best and best["selfies_per_s_offered"] >= 0.6 * 2 * one_core),
    })
    return summary


if __name__ == "__main__":
    main()
