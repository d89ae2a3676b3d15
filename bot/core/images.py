"""Turn uploaded bytes into an RGB array we can trust.

Order matters: the byte limit and the pixel limit are checked on the header, before any
pixel is decoded (decompression bombs); EXIF orientation is applied before anything else
looks at the image; the result is at most ``max_side`` pixels on its longest side.
JPEG, PNG (RGBA composited on white), WebP and HEIC/HEIF (iPhone, via pillow-heif).
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF support is a plugin; without it HEIC is "not an image" for us.
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a dependency
    pass

ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF", "HEIC", "AVIF"})
MAX_SIDE = 1024


class ImageRejected(Exception):
    """The upload cannot be used; ``code`` is a quality-gate code."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


def decode(data: bytes, *, max_bytes: int = 10 * 1024 * 1024, max_pixels: int = 40_000_000,
           max_side: int = MAX_SIDE) -> NDArray[np.uint8]:
    """Decode ``data`` to an RGB uint8 array (H, W, 3), upright, at most ``max_side`` px.

    Raises :class:`ImageRejected` with ``too_large`` (bytes or pixels over the limits) or
    ``not_an_image`` (anything we cannot decode as a photo).
    """
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"{len(data)} bytes > {max_bytes}")
    if not data:
        raise ImageRejected("not_an_image", "empty upload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            if image.format not in ALLOWED_FORMATS:
                raise ImageRejected("not_an_image", f"format {image.format}")
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ImageRejected("not_an_image", "empty image")
            if width * height > max_pixels:
                raise ImageRejected("too_large", f"{width}x{height} pixels > {max_pixels}")
            if isinstance(image, ImageFile.ImageFile) and image.format == "JPEG":
                # Decode at a reduced DCT scale (1/2, 1/4, 1/8) when that still leaves at least
                # the size we keep: ask for the kept size itself, so a 2300 x 1400 phone photo
                # decodes at half scale instead of in full (draft never goes below the request).
                scale = min(1.0, max_side / max(width, height))
                image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            image.load()
            image = ImageOps.exif_transpose(image) or image
            image = _to_rgb(image)
            if max(image.size) > max_side:
                scale = max_side / max(image.size)
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            return np.asarray(image, dtype=np.uint8).copy()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_large", str(exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected("not_an_image", exc.__class__.__name__) from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to RGB; transparency becomes white (a phone screenshot's empty parts)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode.startswith("I;16") or image.mode == "I":
        # Integer shift to 8 bits in the image's own width: a few bytes per pixel, not the
        # 8-byte floats (and their copies) a float64 scaling needs (773 MB for a big PNG).
        array = np.asarray(image)
        peak = int(array.max())
        if peak <= 0:
            return Image.new("RGB", image.size)
        shift = max(0, peak.bit_length() - 8)
        array = np.right_shift(array, shift) if shift else array
        return Image.fromarray(array.astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        array32 = np.asarray(image, dtype=np.float32)
        peak_f = float(array32.max()) or 1.0
        return Image.fromarray((array32 * (255.0 / peak_f)).clip(0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def sniff(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) from the header only (no pixels decoded), else None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ALLOWED_FORMATS:
                return None
            return str(image.format), int(image.width), int(image.height)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return None


def precheck(data: bytes, *, max_bytes: int, max_pixels: int) -> str | None:
    """The refusal code a photo gets without decoding it (None: worth sending to a worker)."""
    if len(data) > max_bytes:
        return "too_large"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            header = sniff(data)
        except Image.DecompressionBombError:
            return "too_large"
    if header is None:
        return "not_an_image"
    _, width, height = header
    return "too_large" if width * height > max_pixels else None
