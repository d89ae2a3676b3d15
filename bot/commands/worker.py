"""``python -m bot worker``: a face verification worker (arq, fed through Redis).

Production runs several of these (on any machine that reaches Redis and the database);
``python -m bot serve`` starts ``face.workers`` of them itself unless ``--no-worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from bot import keys
from bot.core.config import Settings, load_settings
from bot.core.errors import ConfigError
from bot.core.logs import setup_logging
from bot.core.storage.redis import EmbeddedRedis
from bot.reminder_delivery import make_deliverer
from face import weights
from face.engine import FaceEngine, FaceModelMissing
from face.jobs import build_worker

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("worker", help="run a face verification worker (Redis job queue)")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--redis-url", help="Redis to take jobs from (default from config)")
    parser.add_argument("--database-url", help="database to record attempts in (default from config)")
    parser.add_argument("--data-dir", help="data directory (photos, embedded Redis)")
    parser.set_defaults(func=run)


def worker_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.redis_url:
        overrides["storage.redis_url"] = args.redis_url
    if args.database_url:
        overrides["storage.database_url"] = args.database_url
    if args.data_dir:
        overrides["storage.data_dir"] = args.data_dir
    return load_settings(args.config, overrides=overrides)


async def _main(settings: Settings, burst: bool) -> None:
    engine = await asyncio.to_thread(FaceEngine.from_settings, settings)
    embedded: EmbeddedRedis | None = None
    redis_url = settings.storage.redis_url
    if not redis_url:  # share (or start) the embedded Redis of this data dir
        embedded = EmbeddedRedis(settings.storage.data_dir)
        await asyncio.to_thread(embedded.start)
        redis_url = embedded.url
    worker = build_worker(settings, redis_url, burst=burst, engine=engine,
                          deliverer_factory=make_deliverer)
    try:
        await worker.async_run()
    except asyncio.CancelledError:  # SIGTERM/SIGINT: arq cancels its main task
        log.info("face worker stopped")
    finally:
        await worker.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def lower_priority(nice: int) -> None:
    """Run at ``nice`` (face.worker_nice): on a shared box, chat turns get the CPU first."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) < nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except (AttributeError, OSError) as exc:  # not on this platform: say so, run anyway
        log.warning("face worker priority unchanged: %s", exc)


def run(args: argparse.Namespace) -> int:
    setup_logging()
    settings = worker_settings(args)
    lower_priority(settings.face.worker_nice)
    try:
        asyncio.run(_main(settings, args.burst))
    except FaceModelMissing as exc:
        print(f"face worker cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------- started by serve


def spawn_command(settings: Settings, redis_url: str, config: str | None) -> list[str]:
    command = [sys.executable, "-m", "bot"]
    if config:
        command += ["--config", config]
    command += ["worker", "--redis-url", redis_url, "--database-url", settings.database_url,
                "--data-dir", str(Path(settings.storage.data_dir).resolve())]
    return command


def check_weights(settings: Settings) -> None:
    """Raise ConfigError (a clear start-up error) when the face model files are missing."""
    home = weights.deepface_home(settings.face.deepface_home)
    missing = weights.missing(home)
    if missing:
        raise ConfigError(
            f"face model weights missing in {weights.weights_dir(home)}: {', '.join(missing)}; "
            "run `python -m face.weights install`, or start with --no-worker")


def worker_processes_ctx(count: int, config: str | None):  # type: ignore[no-untyped-def]
    """A cleanup_ctx for ``serve``: keep ``count`` worker processes running."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[keys.SETTINGS]
        redis_url = settings.storage.redis_url
        if not redis_url:
            redis_url = app[keys.EMBEDDED_REDIS].url
        command = spawn_command(settings, redis_url, config)
        processes: list[subprocess.Popen[bytes]] = []

        def start() -> subprocess.Popen[bytes]:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
            log.info("face worker started", extra={"pid": process.pid})
            return process

        processes.extend(start() for _ in range(count))

        async def supervise() -> None:
            while True:
                await asyncio.sleep(5)
                for index, process in enumerate(processes):
                    code = process.poll()
                    if code is None:
                        continue
                    if code == 2:  # cannot start (weights missing): do not loop
                        log.error("face worker cannot start; selfies wait in the queue")
                        continue
                    log.error("face worker exited (%s); restarting", code)
                    processes[index] = start()

        task = asyncio.create_task(supervise(), name="face-workers")
        yield
        task.cancel()
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.to_thread(process.wait, 15)
            except subprocess.TimeoutExpired:
                process.kill()

    return ctx
