"""Helpers for the face tests: one loaded model per test session, the shared photos, an
enrolled pensioner, and a real worker run that brings the verdict."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.core.images import decode
from bot.face_service import FaceService, attach
from bot.records.attempts import photo_store
from bot.services import Services
from face.engine import FaceEngine
from face.enrol import enrol
from face.jobs import build_worker
from face.weights import deepface_home, missing
from nlu.entities import with_check_digit
from tests.conftest import FACES_DIR, TestBot, backends

ID_OBAMA = with_check_digit("63010219610804001")  # enrolled with obama/obama1.jpg
IDENTITY_ONLY = {"face.challenge": False}  # selfies checked by identity alone, no pose challenge

needs_photos = pytest.mark.skipif(
    not (FACES_DIR / "pairs.csv").is_file(),
    reason=f"face photos not found in {FACES_DIR} (set FACES_DIR to ../shared/faces)")
needs_model = pytest.mark.skipif(
    bool(missing(deepface_home())),
    reason="Dlib weights not installed (run `python -m face.weights install`)")


@functools.cache
def engine() -> FaceEngine:
    """The real model, loaded once per test session (it takes a few seconds)."""
    return FaceEngine()


@functools.cache
def photo_bytes(name: str) -> bytes:
    return (FACES_DIR / name).read_bytes()


def photo(name: str) -> np.ndarray:
    return decode(photo_bytes(name))


@functools.cache
def embedding(name: str) -> tuple[float, ...]:
    analysis = engine().analyse(photo_bytes(name))
    assert analysis.embedding is not None, (name, analysis.issues)
    return tuple(analysis.embedding)


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def faces_path(name: str) -> Path:
    return FACES_DIR / name


@pytest.fixture
async def face(services: Services) -> FaceService:
    """The face service attached to the test's services (a plugin of tests/conftest.py)."""
    return attach(services)


async def enrol_obama(services: Services) -> int:
    """Enrol ``ID_OBAMA`` (欧巴马) from obama/obama1.jpg with the real model; the pensioner id."""
    result = await enrol(services.db, engine(), photo_store(services.settings), ID_OBAMA, "欧巴马",
                         photo_bytes("obama/obama1.jpg"))
    assert result.ok and result.pensioner_id is not None, result.issues
    return result.pensioner_id


async def run_worker(services: Services) -> None:
    """Work off the face queue once with the session's model (a real arq worker, burst mode)."""
    worker = build_worker(services.settings, backends().redis_url, burst=True, engine=engine(),
                          handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()


async def verdict(bot: TestBot, face: FaceService) -> list[Any]:
    """Run the worker, apply its verdict, and return what was pushed to ``bot``."""
    await run_worker(bot.services)
    for _ in range(50):
        if await face.process_pending(block_ms=100):
            break
    return await bot.pushed()


def joined(replies: list[Any]) -> str:
    return "\n".join(r.text for r in replies)
