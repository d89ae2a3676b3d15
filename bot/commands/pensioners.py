"""``python -m bot pensioners import FILE.csv``: certifications recorded by staff elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.commands.wechat import app_services
from bot.core.config import Settings, load_settings
from bot.pensioner_import import ImportRejected, import_rows, parse, read_text


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("pensioners", help="the pensioner registry")
    actions = parser.add_subparsers(dest="pensioners_command", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="import certifications from CSV "
                             "(id_number,name,last_certified[,phone]); all rows or none")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=run_import)


async def _import(settings: Settings, path: Path, rows: list) -> dict[str, int]:  # type: ignore[type-arg]
    async with app_services(settings) as services:
        return await import_rows(services.db, rows, source=path.name, timezone=settings.reminders.timezone)


def run_import(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    try:
        if not args.file.is_file():
            raise ImportRejected([f"文件不存在：{args.file}"])
        today = datetime.now(ZoneInfo(settings.reminders.timezone)).date()
        rows = parse(read_text(args.file), today)
        counts = asyncio.run(_import(settings, args.file, rows))
    except ImportRejected as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"没有导入任何记录（{len(exc.errors)} 处问题，改好后整个文件重新导入）", file=sys.stderr)
        return 1
    print(json.dumps(counts), flush=True)
    return 0
