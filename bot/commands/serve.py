"""``python -m bot serve``: run the web server."""

from __future__ import annotations

import argparse
from typing import Any

from aiohttp import web

from bot.app import create_app
from bot.config import load_settings
from bot.logs import setup_logging


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("serve", help="run the HTTP server (web chat, webhooks, staff console)")
    parser.add_argument("--host", help="listen address (default from config)")
    parser.add_argument("--port", type=int, help="listen port (default from config)")
    parser.add_argument("--demo", action="store_true", help="seed fictional demo pensioners")
    parser.add_argument("--no-worker", action="store_true", help="do not start a face worker process")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    setup_logging()
    overrides: dict[str, Any] = {"demo": True} if args.demo else {}
    if args.no_worker:
        overrides["face.workers"] = 0
    settings = load_settings(args.config, overrides=overrides)
    app = create_app(settings)
    if settings.face.workers > 0:
        from bot.commands.worker import worker_processes_ctx

        app.cleanup_ctx.append(worker_processes_ctx(settings.face.workers, args.config))
    web.run_app(app, host=args.host or settings.server.host, port=args.port or settings.server.port,
                print=lambda line: print(line, flush=True), access_log=None)
    return 0
