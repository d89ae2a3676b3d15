"""``python -m bot serve`` starts a face worker; its verdicts reach the web chat's updates."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from nlu.entities import with_check_digit
from tests.conftest import FACES_DIR, ROOT
from tests.face_support import needs_model, needs_photos, photo_bytes
from tests.services import free_port, wait_healthy
from tests.webchat import new_web_id, public_id

pytestmark = [needs_model, needs_photos, pytest.mark.slow]


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _children_running_worker(parent: int) -> list[int]:
    """Child processes of ``parent`` running ``python -m bot ... worker`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().split(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        pid = int(stat.parent.name)
        if ppid == parent and "worker" in _cmdline(pid) and "bot" in _cmdline(pid):
            found.append(pid)
    return found


@pytest.mark.parametrize("no_worker", [False, True])
async def test_serve_runs_a_worker_and_pushes_the_verdict(tmp_path: Path, no_worker: bool) -> None:
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"storage": {"data_dir": str(tmp_path / "var")},
                                      "server": {"port": port},
                                      "face": {"challenge": False}}),  # identity alone
                      encoding="utf-8")
    bot = [sys.executable, "-m", "bot", "--config", str(config)]
    id_number = with_check_digit("63010219610804001")
    enrolled = await asyncio.to_thread(
        subprocess.run, bot + ["enroll", id_number, "欧巴马", str(FACES_DIR / "obama/obama1.jpg")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert json.loads(enrolled.stdout.splitlines()[-1])["ok"] is True
    server = _start(bot + ["serve"] + (["--no-worker"] if no_worker else []))
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, port, 120)
        await asyncio.sleep(1)
        workers = _children_running_worker(server.pid)
        if no_worker:
            assert workers == []
            return
        assert len(workers) == 1
        from arq.connections import RedisSettings, create_pool

        async with aiohttp.ClientSession() as http:
            user = await new_web_id(http, f"http://127.0.0.1:{port}/api/chat/session")

        from face.jobs import JOB_NAME, QUEUE

        pool = await create_pool(RedisSettings.from_dsn(f"unix://{tmp_path / 'var' / 'redis.sock'}"),
                                 default_queue_name=QUEUE)
        await pool.enqueue_job(JOB_NAME, {
            "request_id": "serve-1", "conversation_key": f"web:{public_id(user)}", "dialog": "certify",
            "pensioner_id": 1, "proxy": False, "channel": "web", "chat_user": public_id(user),
            "photo": photo_bytes("obama/obama2.jpg")}, _queue_name=QUEUE)
        await pool.aclose()
        replies: list[dict[str, object]] = []
        deadline = time.monotonic() + 120
        async with aiohttp.ClientSession() as http:
            while not replies and time.monotonic() < deadline:
                async with http.get(f"http://127.0.0.1:{port}/api/chat/updates",
                                    params={"user_id": user}) as response:
                    replies = (await response.json())["replies"]
                await asyncio.sleep(0.3)
        assert replies and "认证成功" in str(replies[0]["text"])
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    assert not any(_alive(pid) for pid in workers)
