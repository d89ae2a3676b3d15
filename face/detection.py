"""A face found in a photo: its box and landmarks (shared by the engine and the quality checks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass
class DetectedFace:
    """One face: its box in the working image (may reach past the edges) and 5 landmarks."""

    left: int
    top: int
    right: int
    bottom: int
    score: float
    landmarks: NDArray[np.float64]  # (5, 2): eye corners 0-1 and 2-3, nose 4
    shape: Any = None  # dlib's full_object_detection, for the aligned chip

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top
