"""``python -m bot enroll ID_NUMBER NAME PHOTO``: register a pensioner and enrol the face (建模).

Prints one JSON line: ``{"ok": true, "pensioner_id": n, "id_number": "masked", "created": bool}``
or ``{"ok": false, "issues": [...], "advice": "..."}`` (exit status 1). Uses the same
database as ``serve`` (``BOT_DATA_DIR`` / ``DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bot.core.config import load_settings
from bot.core.logs import mask_id_number
from bot.core.storage.db import Database, migrate
from bot.records.attempts import photo_store
from face.engine import FaceEngine, FaceModelMissing
from face.enrol import enrol
from nlu.entities import id_checksum_ok, normalise_digits


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("enroll", help="register a pensioner and enrol the face (建模)")
    parser.add_argument("id_number", metavar="ID_NUMBER")
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("photo", metavar="PHOTO", type=Path)
    parser.set_defaults(func=run)


async def _enrol(args: argparse.Namespace, id_number: str, photo: bytes) -> dict[str, object]:
    settings = load_settings(args.config)
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    engine = await asyncio.to_thread(FaceEngine.from_settings, settings)
    await asyncio.to_thread(migrate, settings.database_url)
    db = Database(settings.database_url)
    try:
        result = await enrol(db, engine, photo_store(settings), id_number, args.name.strip(), photo)
    finally:
        await db.dispose()
    if not result.ok:
        return {"ok": False, "issues": result.issues, "advice": result.advice}
    return {"ok": True, "pensioner_id": result.pensioner_id, "id_number": mask_id_number(id_number),
            "created": result.created}


def run(args: argparse.Namespace) -> int:
    id_number = normalise_digits(args.id_number.strip()).upper()
    if not id_checksum_ok(id_number):
        print("enroll: invalid ID number (18 characters with a valid check digit expected)",
              file=sys.stderr)
        return 2
    try:
        photo = args.photo.read_bytes()
    except OSError as exc:
        print(f"enroll: cannot read {args.photo}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        out = asyncio.run(_enrol(args, id_number, photo))
    except FaceModelMissing as exc:
        print(f"enroll: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0 if out["ok"] else 1
