"""Security review (issue 15), finding 11: a 16-bit PNG is decoded in bounded memory."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
from PIL import Image

from bot.core.images import decode


def sixteen_bit_png(width: int, height: int) -> bytes:
    ramp = np.linspace(0, 65535, width, dtype=np.uint32).astype(np.uint16)
    image = Image.fromarray(np.tile(ramp, (height, 1)))
    assert image.mode.startswith("I;16")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_sixteen_bit_png_is_not_decoded_to_float64() -> None:
    width, height = 3000, 3000
    data = sixteen_bit_png(width, height)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    tracemalloc.start()
    try:
        rgb = decode(data, max_pixels=40_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pixels = width * height
    assert peak < 6 * pixels, f"{peak / 1e6:.0f} MB for {pixels / 1e6:.0f} Mpx"  # float64 alone is 8/px
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
    row = rgb[rgb.shape[0] // 2, :, 0].astype(int)
    assert row[0] < 5 and row[-1] > 250 and np.all(np.diff(row) >= 0)  # the ramp survives
