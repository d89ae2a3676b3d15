"""Worker processes: a selfie acknowledged to the user survives a worker that dies mid-job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from bot.core.storage.models import CertificationAttempt
from bot.face_service import attach
from bot.records.attempts import photo_store
from bot.services import Services
from face.enrol import enrol
from face.jobs import DELAY_ENV
from nlu.entities import with_check_digit
from tests.conftest import ROOT, backends
from tests.face_support import engine, needs_model, needs_photos, photo_bytes
from tests.services import stop

pytestmark = [needs_model, needs_photos, pytest.mark.slow]


def _worker(config: Path, delay: float | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop(DELAY_ENV, None)
    if delay:
        env[DELAY_ENV] = str(delay)
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "worker"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_killed_worker_job_runs_again(services: Services, tmp_path: Path) -> None:
    settings = services.settings
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "storage": {"redis_url": backends().redis_url, "database_url": backends().database_url,
                    "data_dir": str(settings.storage.data_dir)},
        "face": {"job_timeout_s": 2, "challenge": False},  # identity alone
    }), encoding="utf-8")
    result = await enrol(services.db, engine(), photo_store(settings),
                         with_check_digit("63010219610804001"), "欧巴马", photo_bytes("obama/obama1.jpg"))
    assert result.ok and result.pensioner_id
    face = attach(services)
    key = "test:kill-1"
    request_id = uuid.uuid4().hex
    job_id = await face.submit({
        "request_id": request_id, "conversation_key": key, "dialog": "certify",
        "pensioner_id": result.pensioner_id, "proxy": False, "channel": "test",
        "chat_user": "kill-1", "photo": photo_bytes("obama/obama2.jpg")})
    redis = services.redis

    first = _worker(config, delay=120)  # takes the job, then hangs in it
    try:
        await _wait_for(lambda: redis.exists(f"arq:in-progress:{job_id}"), 90, "the job to start")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    assert await redis.zscore("face:queue", job_id) is not None, "the job must still be queued"

    second = _worker(config)
    try:
        await _wait_for(lambda: face.process_pending(block_ms=200), 90, "the verdict")
    finally:
        stop(second)
    pushed = await services.outbox.drain(key)
    assert pushed and "认证成功" in pushed[0].text
    async with services.db.session() as session:
        count = await session.scalar(select(func.count(CertificationAttempt.id)))
    assert count == 1
    # Done and gone: no queued job, and no copy of the photo left in Redis.
    assert await redis.zscore("face:queue", job_id) is None
    assert not await redis.exists(f"arq:job:{job_id}", f"arq:result:{job_id}")


def test_worker_without_weights_fails_clearly(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"face": {"deepface_home": str(tmp_path / "empty")},
                                      "storage": {"data_dir": str(tmp_path / "var")}}),
                      encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "worker"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "weights missing" in done.stderr and "face.weights install" in done.stderr


def test_serve_without_weights_stops_at_start_up(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"face": {"deepface_home": str(tmp_path / "empty")},
                                      "storage": {"data_dir": str(tmp_path / "var")}}),
                      encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "serve"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "weights missing" in done.stderr and "--no-worker" in done.stderr
    assert not (tmp_path / "var" / "redis.sock").exists()
