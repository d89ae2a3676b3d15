"""Security review (issue 15), finding 10: data files are 0600 and the data directory 0700."""

from __future__ import annotations

import io
import stat
from pathlib import Path

from bot.app import started
from bot.core.config import load_settings
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


async def test_photos_sent_to_staff_are_checked_stripped_limited_and_0600(services: object) -> None:
    from PIL import Image

    from bot.records.cases import MAX_CASE_PHOTOS
    from tests.channel_fakes import jpeg

    handoff = services.handoff  # type: ignore[attr-defined]
    for junk in (b"\xff\xd8 not a photo", b"<html><script>alert(1)</script></html>", bytes(range(256)) * 40):
        assert handoff._save_case_photo(7, junk) is None
    source = Image.open(io.BytesIO(jpeg()))
    exif = Image.Exif()
    exif[0x8825] = {2: (36.0, 37.0, 0.0)}  # GPS
    exif[0x010F] = "PhoneMaker"
    tagged = io.BytesIO()
    source.save(tagged, format="JPEG", exif=exif)
    assert Image.open(io.BytesIO(tagged.getvalue())).getexif()
    names = [handoff._save_case_photo(7, tagged.getvalue()) for _ in range(MAX_CASE_PHOTOS + 2)]
    kept = [n for n in names if n]
    assert len(kept) == MAX_CASE_PHOTOS
    for name in kept:
        path = handoff.case_photo_dir(7) / name
        assert mode(path) == 0o600
        stored = Image.open(path)
        assert stored.format == "JPEG" and not stored.getexif() and b"PhoneMaker" not in path.read_bytes()
