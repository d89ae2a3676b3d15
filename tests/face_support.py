"""Helpers for the face tests: one loaded model per test session, the shared photos."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from bot.core.images import decode
from face.engine import FaceEngine
from face.weights import deepface_home, missing
from tests.conftest import FACES_DIR

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
