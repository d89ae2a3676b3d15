"""Cheap signs that a selfie is a photo of a screen or of a printed photo (replay).

None of them decides alone: a signal that fires sends the attempt to a person, with the
signal's name and measurement kept as evidence. Signals (stable names):

=====================  ===============================================================
``moire``              isolated periodic peaks in the spectrum (a screen photographed)
``border``             straight edges of a phone or a photo print around the face
``low_colour_depth``   very few distinct colours on the face, or none at all (grey)
``tiny_face``          a face far too small in an otherwise sharp picture
=====================  ===============================================================

The limits were set so that none of the real photos in ``../shared/faces`` fires, while
the matching variant made in code from each of them does (``tests/test_liveness.py``,
BENCHMARKS.md "Liveness").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]


@dataclass(frozen=True)
class ReplayThresholds:
    """Calibrated limits (see the module docstring)."""

    moire_peak: float = 9.0         # a spectrum peak over its neighbourhood's median
    border_sides: int = 3            # long straight edges around the face (of 4)
    border_length: float = 0.45      # ... each this share of the picture's width/height
    min_colours: int = 600           # distinct colours in the 96 px face
    min_chroma: float = 2.0          # mean |R-G| + |G-B| on the face (0: black and white)
    tiny_face_ratio: float = 0.15    # face width / shorter side ...
    tiny_face_sharpness: float = 150.0  # ... in a frame at least this sharp


def _gray(image: Image) -> NDArray[np.float32]:
    rgb = image.astype(np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def moire_score(image: Image, box: tuple[int, int, int, int] | None = None,
                gray_image: NDArray[np.float32] | None = None) -> float:
    """The strongest isolated peak of the (windowed) spectrum over its local median.

    Measured on a 256 px square of the working picture at its own resolution (moire lives
    at the pixel scale), centred on the face; the low frequencies (radius < 12), the axes
    (straight picture edges) and their neighbours are ignored.
    """
    import cv2  # deferred: OpenCV is heavy, loaded by face work only

    gray: NDArray[Any] = _gray(image) if gray_image is None else gray_image
    height, width = gray.shape
    if min(height, width) < 256:
        scale = 256 / min(height, width)
        gray = cv2.resize(gray, (max(256, round(width * scale)), max(256, round(height * scale))),
                          interpolation=cv2.INTER_LINEAR)
        height, width = gray.shape
        box = None
    cx, cy = (width // 2, height // 2) if box is None else ((box[0] + box[2]) // 2,
                                                             (box[1] + box[3]) // 2)
    x0 = min(max(0, cx - 128), width - 256)
    y0 = min(max(0, cy - 128), height - 256)
    patch = gray[y0:y0 + 256, x0:x0 + 256]
    patch = patch - patch.mean()
    window = np.outer(np.hanning(256), np.hanning(256)).astype(np.float32)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(patch * window))).astype(np.float32)
    log = np.log1p(spectrum)
    background = cv2.medianBlur(np.clip(log * 20, 0, 255).astype(np.uint8), 9).astype(np.float32) / 20
    ratio = np.expm1(log) / np.maximum(np.expm1(background), 1e-6)
    yy, xx = np.mgrid[-128:128, -128:128]
    radius = np.hypot(xx, yy)
    mask = (radius >= 12) & (radius <= 120) & (np.abs(xx) > 3) & (np.abs(yy) > 3)
    return float(ratio[mask].max()) if mask.any() else 0.0


def border_sides(image: Image, box: tuple[int, int, int, int], length: float,
                 gray_image: NDArray[np.float32] | None = None) -> int:
    """How many sides of the face have a long straight edge between the face and the frame."""
    import cv2  # deferred: OpenCV is heavy, loaded by face work only

    height, width = image.shape[:2]
    gray = cv2.GaussianBlur((_gray(image) if gray_image is None else gray_image).astype(np.uint8),
                            (5, 5), 0)
    edges = cv2.Canny(gray, 40, 120)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=80,
                            minLineLength=int(length * min(width, height)), maxLineGap=8)
    left, top, right, bottom = box
    inset_x, inset_y = 0.02 * width, 0.02 * height
    found: set[str] = set()
    for x1, y1, x2, y2 in (lines[:, 0] if lines is not None else []):
        dx, dy = abs(int(x2) - int(x1)), abs(int(y2) - int(y1))
        side = None
        if dy <= 0.05 * dx:  # horizontal
            side = _side((y1 + y2) / 2, (inset_y, top, bottom, height - inset_y), ("top", "bottom"))
        elif dx <= 0.05 * dy:  # vertical
            side = _side((x1 + x2) / 2, (inset_x, left, right, width - inset_x), ("left", "right"))
        if side is not None:
            found.add(side)
    return len(found)


def _side(at: float, bounds: tuple[float, float, float, float], names: tuple[str, str]) -> str | None:
    """Which side of the face a line at ``at`` lies on: ``bounds`` are the frame's inset, the
    face's start and end, and the far inset along that axis."""
    inset, face_start, face_end, far = bounds
    if inset < at < face_start:
        return names[0]
    if face_end < at < far:
        return names[1]
    return None


def colour_depth(image: Image, box: tuple[int, int, int, int]) -> tuple[int, float]:
    """(distinct colours, mean chroma) of the face scaled to 96 px without new colours."""
    import cv2  # deferred: OpenCV is heavy, loaded by face work only

    height, width = image.shape[:2]
    left, top, right, bottom = box
    face = image[max(0, top):min(height, bottom), max(0, left):min(width, right)]
    if face.size == 0:
        return 0, 0.0
    small = cv2.resize(face, (96, 96), interpolation=cv2.INTER_NEAREST).astype(np.int32)
    packed = (small[..., 0] << 16) | (small[..., 1] << 8) | small[..., 2]
    chroma = (np.abs(small[..., 0] - small[..., 1]) + np.abs(small[..., 1] - small[..., 2])).mean()
    return int(np.unique(packed).size), float(chroma)


def frame_sharpness(image: Image, gray_image: NDArray[np.float32] | None = None) -> float:
    """Variance of the Laplacian of the whole picture at 512 px."""
    import cv2  # deferred: OpenCV is heavy, loaded by face work only

    gray: NDArray[Any] = _gray(image) if gray_image is None else gray_image
    scale = 512 / max(gray.shape)
    if scale < 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def signals(image: Image, box: tuple[int, int, int, int],
            q: ReplayThresholds | None = None) -> tuple[list[str], dict[str, Any]]:
    """The replay signals that fired and every measurement behind them."""
    q = q or ReplayThresholds()
    height, width = image.shape[:2]
    fired: list[str] = []
    gray = _gray(image)  # once for the three measures that read it
    moire = moire_score(image, box, gray)
    sides = border_sides(image, box, q.border_length, gray)
    colours, chroma = colour_depth(image, box)
    ratio = (box[2] - box[0]) / min(height, width)
    sharp = frame_sharpness(image, gray)
    if moire >= q.moire_peak:
        fired.append("moire")
    if sides >= q.border_sides:
        fired.append("border")
    if colours < q.min_colours or chroma < q.min_chroma:
        fired.append("low_colour_depth")
    if ratio < q.tiny_face_ratio and sharp >= q.tiny_face_sharpness:
        fired.append("tiny_face")
    measured = {"moire": round(moire, 1), "border_sides": sides, "colours": colours,
                "chroma": round(chroma, 1), "face_ratio": round(ratio, 3),
                "frame_sharpness": round(sharp, 1)}
    return fired, measured
