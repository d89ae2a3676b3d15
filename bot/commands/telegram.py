"""``python -m bot telegram poll``: the Telegram channel with long polling (development)."""

from __future__ import annotations

import argparse
import asyncio

from bot.channels.telegram import poll
from bot.commands.wechat import app_services
from bot.core.config import Settings, load_settings
from bot.core.errors import ConfigError
from bot.core.logs import setup_logging


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("telegram", help="Telegram channel tools")
    actions = parser.add_subparsers(dest="telegram_command", metavar="ACTION", required=True)
    poll = actions.add_parser("poll", help="answer Telegram with long polling instead of the webhook")
    poll.set_defaults(func=run_poll)


async def _poll(settings: Settings) -> None:
    async with app_services(settings) as services:
        await poll(services)


def run_poll(args: argparse.Namespace) -> int:
    setup_logging()
    settings = load_settings(args.config)
    if not settings.telegram.token:
        raise ConfigError("telegram.token (TELEGRAM_TOKEN) is not set")
    asyncio.run(_poll(settings))
    return 0
