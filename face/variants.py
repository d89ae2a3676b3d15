"""Phone-like defects made in code from good photos (calibration and tests).

Each function takes and returns an RGB uint8 array. Used to calibrate the quality gate
(``python -m face.calibrate``) and by the tests; no extra photo files are committed.
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image

Array = NDArray[np.uint8]


def darken(image: Array, factor: float = 0.25) -> Array:
    """Evening indoor light: everything scaled down (with a little gamma)."""
    scaled = (image.astype(np.float32) / 255.0) ** 1.2 * factor * 255.0
    return np.asarray(np.clip(scaled, 0, 255), dtype=np.uint8)


def brighten(image: Array, factor: float = 2.2) -> Array:
    """Over-exposure: highlights burn out."""
    return np.asarray(np.clip(image.astype(np.float32) * factor + 40, 0, 255), dtype=np.uint8)


def blur(image: Array, sigma_ratio: float = 0.012) -> Array:
    """Camera shake / missed focus: a Gaussian blur relative to the picture size."""
    import cv2  # deferred: OpenCV is heavy, loaded by face work only

    sigma = max(1.5, sigma_ratio * max(image.shape[:2]))
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), dtype=np.uint8)


def shrink(image: Array, width: int = 140) -> Array:
    """A face far away: the whole picture made small, pasted in a large plain frame."""
    small = Image.fromarray(image).resize(
        (width, max(1, round(image.shape[0] * width / image.shape[1]))), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width * 5, round(small.height * 3.5)), (128, 128, 128))
    canvas.paste(small, ((canvas.width - small.width) // 2, (canvas.height - small.height) // 2))
    return np.asarray(canvas).copy()


def crop_side(image: Array, box: tuple[int, int, int, int], keep: float = 0.55) -> Array:
    """Cut the picture through the face: keep only ``keep`` of the face's width."""
    left, _, right, _ = box
    cut = int(left + (right - left) * keep)
    return np.ascontiguousarray(image[:, :cut])


def tilt(image: Array, degrees: float) -> Array:
    """Turn the picture (head tilted) around its centre, edges filled with grey."""
    return np.asarray(Image.fromarray(image).rotate(degrees, resample=Image.Resampling.BICUBIC,
                                                    expand=True, fillcolor=(128, 128, 128))).copy()


def backlight(image: Array, box: tuple[int, int, int, int]) -> Array:
    """A bright window behind a person in shadow: face darkened, surroundings burnt."""
    out = np.clip(image.astype(np.float32) * 1.6 + 90, 0, 255)
    left, top, right, bottom = box
    pad_x, pad_y = (right - left) // 3, (bottom - top) // 2
    y0, y1 = max(0, top - pad_y), min(image.shape[0], bottom + pad_y)
    x0, x1 = max(0, left - pad_x), min(image.shape[1], right + pad_x)
    out[y0:y1, x0:x1] = image[y0:y1, x0:x1].astype(np.float32) * 0.35
    return out.astype(np.uint8)


def squeeze(image: Array, ratio: float = 0.55) -> Array:
    """A turned head, roughly: the picture squeezed horizontally on one side of the face."""
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((max(1, int(w * ratio)), h))).copy()


def encode(image: Array, fmt: str = "JPEG", *, exif_orientation: int | None = None,
           quality: int = 90) -> bytes:
    """Bytes as a phone would send them; optional EXIF orientation tag."""
    buffer = io.BytesIO()
    picture = Image.fromarray(image)
    kwargs: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    picture.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def exif_rotated(image: Array) -> bytes:
    """The pixels stored turned 90 degrees with orientation tag 6, like a phone held upright."""
    stored = np.ascontiguousarray(np.rot90(image, 1))  # counter-clockwise on disk
    return encode(stored, exif_orientation=6)


# ---------------------------------------------------------------- replays (issue 21)


def screen_moire(image: Array, period: float = 3.3, angle: float = 12.0, depth: float = 0.22) -> Array:
    """A screen photographed: a fine periodic pattern (the pixel grid beating with the camera)."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = np.radians(angle)
    wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
    out = image.astype(np.float32) * (1 - depth / 2 + depth / 2 * wave[..., None])
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)


def held_photo(image: Array, scale: float = 0.6, frame: int = 14,
               background: tuple[int, int, int] = (92, 80, 70)) -> Array:
    """A printed photo (or a phone) held up to the camera: a white-edged picture on a table."""
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize((int(w * scale), int(h * scale)), Image.Resampling.LANCZOS)
    card = Image.new("RGB", (small.width + 2 * frame, small.height + 2 * frame), (240, 238, 232))
    card.paste(small, (frame, frame))
    canvas = Image.new("RGB", (w, h), background)
    canvas.paste(card, ((w - card.width) // 2, (h - card.height) // 2))
    return np.asarray(canvas).copy()


def posterize(image: Array, bits: int = 2) -> Array:
    """Very few colours (a cheap print, a GIF-like screenshot)."""
    shift = 8 - bits
    return np.asarray((image >> shift) << shift, dtype=np.uint8)


def grayscale(image: Array) -> Array:
    """A black-and-white photo."""
    gray = (0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def small_in_frame(image: Array, ratio: float = 0.25) -> Array:
    """A sharp wide picture with the person small in it (a photo of a photo from afar)."""
    import cv2  # deferred: OpenCV is heavy, loaded by face work only

    h, w = image.shape[:2]
    small = cv2.resize(image, (int(w * ratio), int(h * ratio)), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)  # sharp clutter around it
    canvas = np.asarray(cv2.GaussianBlur(noise, (0, 0), 0.8), dtype=np.uint8)
    y0, x0 = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    canvas[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return np.ascontiguousarray(canvas)


# ---------------------------------------------------------------- posed photos (issue 21)

# Rough depth (toward the camera, in eye-distance units) of dlib's 68 points on a head.
_DEPTH = np.array([0.0] * 3 + [0.15, 0.3, 0.45, 0.55, 0.6, 0.62, 0.6, 0.55, 0.45, 0.3, 0.15]
                  + [0.0] * 3  # jaw 0-16
                  + [0.45, 0.55, 0.6, 0.6, 0.55] * 2  # brows 17-26
                  + [0.65, 0.75, 0.85, 0.95]  # nose bridge 27-30
                  + [0.7, 0.75, 0.8, 0.75, 0.7]  # nostrils 31-35
                  + [0.45, 0.55, 0.55, 0.55, 0.55, 0.55] * 2  # eyes 36-47
                  + [0.6] * 20)  # mouth 48-67


def posed(image: Array, points: NDArray[np.float64], pose: str, degrees: float = 25.0) -> Array:
    """The face turned (``left``/``right``), looking ``up`` or with the ``mouth`` open.

    A piecewise-affine warp of the 68 landmarks (plus fixed points on the picture's edge)
    onto where a head with a rough depth profile would put them: an approximation of a
    real pose, good enough for the landmark predictor and the matcher.
    """
    import cv2  # deferred: OpenCV is heavy, loaded by face work only
    from scipy.spatial import Delaunay  # deferred: SciPy, for this variant only

    h, w = image.shape[:2]
    eye = float(np.linalg.norm(points[45] - points[36])) or 1.0
    centre = points.mean(axis=0)
    target = points.copy()
    depth = _DEPTH * eye
    angle = np.radians(degrees)
    if pose in ("left", "right"):
        sign = 1.0 if pose == "left" else -1.0  # left: the nose moves to the image's right
        dx = points[:, 0] - centre[0]
        target[:, 0] = centre[0] + dx * np.cos(angle) + sign * depth * np.sin(angle)
    elif pose == "up":
        dy = points[:, 1] - centre[1]
        target[:, 1] = centre[1] + dy * np.cos(angle) - depth * np.sin(angle)
    elif pose == "mouth":
        drop = 0.45 * eye
        lower = [5, 6, 7, 8, 9, 10, 11, 55, 56, 57, 58, 59, 65, 66, 67]
        target[lower, 1] += drop
        target[[4, 12, 48, 54, 60, 64], 1] += drop * 0.4
    else:
        raise ValueError(f"unknown pose {pose}")
    edge = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1], [w // 2, 0], [w // 2, h - 1],
                     [0, h // 2], [w - 1, h // 2]], dtype=np.float64)
    source = np.vstack([points, edge])
    destination = np.vstack([target, edge])
    out = image.copy()
    for simplex in Delaunay(destination).simplices:
        src = source[simplex].astype(np.float32)
        dst = destination[simplex].astype(np.float32)
        x, y, bw, bh = cv2.boundingRect(dst)
        if bw <= 0 or bh <= 0:
            continue
        matrix = cv2.getAffineTransform(src, (dst - [x, y]).astype(np.float32))
        patch = cv2.warpAffine(image, matrix, (bw, bh), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        mask = np.zeros((bh, bw), dtype=np.uint8)
        cv2.fillConvexPoly(mask, np.round(dst - [x, y]).astype(np.int32), 1)
        region = out[y:y + bh, x:x + bw]
        keep = mask[:region.shape[0], :region.shape[1]].astype(bool)
        region[keep] = patch[:region.shape[0], :region.shape[1]][keep]
    if pose == "mouth":  # the open mouth is dark inside
        inner = np.round(target[60:68]).astype(np.int32)
        cv2.fillPoly(out, [inner], (40, 20, 20))
    return out
