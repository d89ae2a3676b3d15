"""Command line: ``python -m bot <command>``. Each command module adds its own parser."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bot.core.errors import ConfigError

# Modules that define ``add_parser(subparsers)``; later features append theirs.
COMMAND_MODULES = [
    "bot.commands.serve",
    "bot.commands.chat",
    "bot.commands.wechat",
    "bot.commands.telegram",
    "bot.commands.staff",
    "bot.commands.worker",
    "bot.commands.enroll",
    "bot.commands.face",
    "bot.commands.reminders",
    "bot.commands.pensioners",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot",
                                     description="Pension certification assistant (养老金资格认证小助手)")
    parser.add_argument("--config", help="path to config.yml (default: ./config.yml or $BOT_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"configuration error: {exc.detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
