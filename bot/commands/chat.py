"""``python -m bot chat``: the same pipeline in a terminal."""

from __future__ import annotations

import argparse
import asyncio
import uuid

from bot.app import started
from bot.core.config import load_settings
from bot.core.messages import InboundMessage, Reply


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("chat", help="chat with the assistant in this terminal")
    parser.add_argument("--user", default="terminal", help="chat identity (default: terminal)")
    parser.set_defaults(func=run)


def print_replies(replies: list[Reply]) -> None:
    for reply in replies:
        print(f"助手> {reply.as_plain_text()}", flush=True)


async def _loop(args: argparse.Namespace) -> None:
    settings = load_settings(args.config)
    async with started(settings) as services:
        first = await services.handle(InboundMessage("cli", args.user, uuid.uuid4().hex, text="你好"))
        print_replies(first.replies)
        while True:
            try:
                line = await asyncio.to_thread(input, "您> ")
            except EOFError:
                break
            if not line.strip():
                continue
            turn = await services.handle(InboundMessage("cli", args.user, uuid.uuid4().hex, text=line))
            print_replies(turn.replies)
            print_replies(await services.outbox.drain(f"cli:{args.user}"))


def run(args: argparse.Namespace) -> int:
    asyncio.run(_loop(args))
    return 0
