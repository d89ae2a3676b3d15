"""``python -m bot staff add USERNAME [--role agent|supervisor]`` (password from stdin)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from bot.core.config import load_settings
from bot.core.errors import BotError
from bot.core.storage.db import Database, migrate
from bot.core.storage.redis import EmbeddedRedis, make_client
from bot.staff.auth import StaffAuth


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("staff", help="manage staff console accounts")
    staff_sub = parser.add_subparsers(dest="staff_command", metavar="ACTION", required=True)
    add = staff_sub.add_parser("add", help="add a staff member (password read from stdin)")
    add.add_argument("username")
    add.add_argument("--role", choices=["agent", "supervisor"], default="agent")
    add.add_argument("--languages", default="zh",
                     help="languages they chat in, e.g. zh,bo for a Tibetan speaker (default zh)")
    add.set_defaults(func=run_add)
    langs = staff_sub.add_parser("languages", help="set the languages a staff member chats in")
    langs.add_argument("username")
    langs.add_argument("languages", help="e.g. zh,bo (Tibetan chats go to them first) or zh")
    langs.set_defaults(func=run_languages)
    passwd = staff_sub.add_parser("passwd", help="set a new password (read from stdin)")
    passwd.add_argument("username")
    passwd.set_defaults(func=run_passwd)
    unlock = staff_sub.add_parser("unlock", help="clear a login lockout")
    unlock.add_argument("username")
    unlock.set_defaults(func=run_unlock)
    listing = staff_sub.add_parser("list", help="list staff accounts")
    listing.set_defaults(func=run_list)


def read_password() -> str:
    """From a terminal: asked twice; from a pipe: the first line."""
    if sys.stdin.isatty():
        first = getpass.getpass("密码 / password: ")
        if getpass.getpass("再输一次 / again: ") != first:
            raise SystemExit("passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def _with_auth(args: argparse.Namespace, action: str, password: str | None) -> int:
    settings = load_settings(args.config)
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(migrate, settings.database_url)
    db = Database(settings.database_url)
    embedded = None
    redis_url = settings.storage.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(settings.storage.data_dir)
        await asyncio.to_thread(embedded.start)
        redis_url = embedded.url
    redis = make_client(redis_url, settings.storage.redis_timeout_s)
    auth = StaffAuth(settings, db, redis)
    try:
        if action == "add":
            assert password is not None
            user = await auth.create_user(args.username, password, args.role, args.languages)
            await db.audit("cli", "staff_add", target=f"staff:{user.username}", role=user.role,
                           languages=user.languages)
            print(f"added {user.username} ({user.role}, {user.languages})")
        elif action == "languages":
            user = await auth.set_languages(args.username, args.languages)
            await db.audit("cli", "staff_languages", target=f"staff:{user.username}", languages=user.languages)
            print(f"{user.username} chats in {user.languages}")
        elif action == "passwd":
            assert password is not None
            await auth.set_password(args.username, password)
            await db.audit("cli", "staff_passwd", target=f"staff:{args.username}")
            print(f"password changed for {args.username}")
        elif action == "unlock":
            await auth.unlock(args.username)
            await db.audit("cli", "staff_unlock", target=f"staff:{args.username}")
            print(f"unlocked {args.username}")
        else:
            for user in await auth.users():
                print(f"{user.username}\t{user.role}\t{'active' if user.active else 'inactive'}\t{user.languages}")
    except BotError as exc:
        print(f"error: {exc.user_message} ({exc.detail})", file=sys.stderr)
        return 1
    finally:
        await redis.aclose()
        await db.dispose()
        if embedded is not None:
            # Leave a shared embedded server running if a bot process uses it.
            await asyncio.to_thread(embedded.stop)
    return 0


def run_add(args: argparse.Namespace) -> int:
    return asyncio.run(_with_auth(args, "add", read_password()))


def run_passwd(args: argparse.Namespace) -> int:
    return asyncio.run(_with_auth(args, "passwd", read_password()))


def run_unlock(args: argparse.Namespace) -> int:
    return asyncio.run(_with_auth(args, "unlock", None))


def run_list(args: argparse.Namespace) -> int:
    return asyncio.run(_with_auth(args, "list", None))


def run_languages(args: argparse.Namespace) -> int:
    return asyncio.run(_with_auth(args, "languages", None))
