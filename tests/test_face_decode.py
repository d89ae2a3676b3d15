"""Decoding uploads: formats, EXIF orientation, limits before decoding, non-images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bot.core.images import ImageRejected, decode, precheck
from face import variants


def _picture(width: int = 300, height: int = 200) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, : width // 2] = (200, 30, 30)  # red left half: tells orientation apart
    image[:, width // 2:] = (30, 30, 200)
    return image


def _encode(image: np.ndarray | Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    picture.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_common_phone_formats_decode_to_rgb(fmt: str) -> None:
    decoded = decode(_encode(_picture(), fmt))
    assert decoded.shape == (200, 300, 3)
    assert decoded.dtype == np.uint8
    assert decoded[100, 20, 0] > 150 and decoded[100, 280, 2] > 150


def test_rgba_png_is_composited_on_white() -> None:
    rgba = np.zeros((50, 80, 4), dtype=np.uint8)
    rgba[:, :40] = (10, 10, 10, 255)  # opaque dark left half, transparent right half
    decoded = decode(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert decoded.shape == (50, 80, 3)
    assert decoded[25, 10].tolist() == [10, 10, 10]
    assert decoded[25, 70].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied_first() -> None:
    upright = _picture(300, 200)
    decoded = decode(variants.exif_rotated(upright))
    assert decoded.shape == (200, 300, 3)
    assert decoded[100, 20, 0] > 150, "the red half must be on the left again"


def test_downscaled_to_at_most_1024_px() -> None:
    decoded = decode(_encode(_picture(2400, 1200), "JPEG"))
    assert max(decoded.shape[:2]) == 1024
    assert decoded.shape[:2] == (512, 1024)


def test_pdf_renamed_jpg_is_not_an_image() -> None:
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    with pytest.raises(ImageRejected) as refused:
        decode(pdf)
    assert refused.value.code == "not_an_image"
    assert precheck(pdf, max_bytes=10_000_000, max_pixels=40_000_000) == "not_an_image"


def test_truncated_and_empty_files_are_not_images() -> None:
    data = _encode(_picture(), "JPEG")
    for broken in (b"", data[:200], b"GIF89a" + b"\0" * 50, b"hello world"):
        with pytest.raises(ImageRejected) as refused:
            decode(broken)
        assert refused.value.code == "not_an_image"


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims a huge size (a decompression bomb's header)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # 30000 x 30000 = 900 MP: over our limit and over Pillow's own bomb limit.
    bomb = _png_header_only(30000, 30000)
    assert len(bomb) < 2000
    with pytest.raises(ImageRejected) as refused:
        decode(bomb)
    assert refused.value.code == "too_large"
    assert precheck(bomb, max_bytes=10_000_000, max_pixels=40_000_000) == "too_large"
    # 8000 x 8000 = 64 MP: under Pillow's limit, over ours.
    with pytest.raises(ImageRejected) as refused:
        decode(_png_header_only(8000, 8000), max_pixels=40_000_000)
    assert refused.value.code == "too_large"


def test_a_real_compressed_bomb_is_refused() -> None:
    # 12000 x 12000 of one colour compresses to a few hundred KB.
    big = Image.new("L", (12000, 12000), 0)
    data = _encode(big, "PNG", optimize=False)
    assert len(data) < 1_000_000
    with pytest.raises(ImageRejected) as refused:
        decode(data, max_pixels=40_000_000)
    assert refused.value.code == "too_large"


def test_byte_limit() -> None:
    data = _encode(_picture(), "PNG")
    with pytest.raises(ImageRejected) as refused:
        decode(data, max_bytes=len(data) - 1)
    assert refused.value.code == "too_large"
