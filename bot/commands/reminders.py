"""``python -m bot reminders send [--now YYYY-MM-DDTHH:MM] [--dry-run]``: one reminder pass.

Prints one JSON line ``{"due": N, "sent": N, "failed": N, "skipped": N}``. Safe while a
server (or a worker's cron) runs on the same storage: deliveries are claimed in the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime

from bot.commands.wechat import app_services
from bot.core.config import Settings, load_settings
from bot.core.errors import BotError
from bot.core.logs import setup_logging
from bot.records.reminders import run_pass
from bot.reminder_delivery import make_deliverer


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("reminders", help="certification reminders")
    actions = parser.add_subparsers(dest="reminders_command", metavar="ACTION", required=True)
    send = actions.add_parser("send", help="send the reminders due now (one pass)")
    send.add_argument("--now", type=_local_time, help="as of this local time (reminders.timezone), "
                      "YYYY-MM-DDTHH:MM; default: the current time")
    send.add_argument("--dry-run", action="store_true", help="count what is due, send nothing")
    send.set_defaults(func=run_send)


def _local_time(value: str) -> datetime:
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DDTHH:MM, got {value!r}") from exc
    return moment


async def _send(settings: Settings, now: datetime | None, dry_run: bool) -> dict[str, int]:
    async with app_services(settings) as services:
        deliverer = make_deliverer(settings, services.redis, services.outbox)
        try:
            result = await run_pass(settings, services.db, services.redis, now=now, dry_run=dry_run,
                                    deliverer=deliverer, audit=services.audit)
        finally:
            await deliverer.close()
    return result.counts()


def run_send(args: argparse.Namespace) -> int:
    setup_logging()
    settings = load_settings(args.config)
    try:
        counts = asyncio.run(_send(settings, args.now, args.dry_run))
    except BotError as exc:
        print(f"reminders not sent: {exc.detail}", file=sys.stderr)
        return 1
    print(json.dumps(counts), flush=True)
    return 0
