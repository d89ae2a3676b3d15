"""``python -m bot wechat menu``: publish the official-account menu from config.yml."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot import keys
from bot.app import create_app
from bot.channels.wechat_api import publish_menu, validate_menu
from bot.core.config import Settings, load_settings
from bot.core.errors import BotError, ConfigError
from bot.services import Services


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("wechat", help="WeChat official account tools")
    actions = parser.add_subparsers(dest="wechat_command", metavar="ACTION", required=True)
    menu = actions.add_parser("menu", help="publish wechat.menu from config.yml (menu/create)")
    menu.add_argument("--dry-run", action="store_true", help="validate and print, do not publish")
    menu.set_defaults(func=run_menu)


@asynccontextmanager
async def app_services(settings: Settings) -> AsyncIterator[Services]:
    """Redis and the database as the server has them (the token cache is shared)."""
    app = create_app(settings, features=[])
    contexts: list[Any] = [ctx(app) for ctx in app.cleanup_ctx]
    for ctx in contexts:
        await ctx.__anext__()
    try:
        yield app[keys.SERVICES]
    finally:
        for ctx in reversed(contexts):
            try:
                await ctx.__anext__()
            except StopAsyncIteration:
                pass


async def _publish(settings: Settings) -> None:
    async with app_services(settings) as services:
        await publish_menu(services.settings, services.redis)


def run_menu(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    problems = validate_menu(settings.wechat.menu)
    if problems:
        raise ConfigError("wechat.menu: " + "; ".join(problems))
    if args.dry_run:
        print(json.dumps({"button": settings.wechat.menu}, ensure_ascii=False, indent=2))
        return 0
    try:
        asyncio.run(_publish(settings))
    except ConfigError:
        raise
    except BotError as exc:
        print(f"menu not published: {exc.detail}", file=sys.stderr)
        return 1
    print(f"menu published ({len(settings.wechat.menu)} buttons)")
    return 0
