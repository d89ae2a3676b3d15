"""Security review (issue 15), finding 10: data files are 0600 and the data directory 0700."""

from __future__ import annotations

import stat
from pathlib import Path

from bot.app import started
from bot.config import load_settings
from tests.conftest import ROOT


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_embedded_redis_sqlite_and_data_dir_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    settings = load_settings(ROOT / "config.yml", env={}, overrides={"storage.data_dir": str(data_dir)})
    async with started(settings) as services:
        await services.redis.set("probe", "630102195003150029")
        await services.redis.execute_command("BGREWRITEAOF")
        await services.audit("test", "probe")
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "bot.sqlite3") == 0o600
    redis_files = [p for p in data_dir.rglob("*") if p.is_file() and ("aof" in p.name or p.suffix == ".rdb")]
    assert redis_files, sorted(data_dir.rglob("*"))
    for path in redis_files:
        assert mode(path) == 0o600, path


async def test_photos_sent_to_staff_are_0600(services: object, tmp_path: Path) -> None:
    handoff = services.handoff  # type: ignore[attr-defined]
    name = handoff._save_case_photo(7, b"\xff\xd8 not checked here")
    assert mode(handoff.case_photo_dir(7) / name) == 0o600
