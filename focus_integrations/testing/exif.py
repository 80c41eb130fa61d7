"""Photos as phones store them, built offline: JPEG pixels stored sideways (or mirrored) plus an EXIF
orientation tag that says how to show them.

The stored pixels are made from the upright picture with plain numpy operations that follow the EXIF 2.3
definition of each tag (what the 0th stored row and column are in the upright picture), not with Pillow's
``exif_transpose`` table, so a test that decodes them upright checks the loader against the standard.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112

# Tag -> upright pixels (H, W, 3) -> the pixels the camera stored.
_STORED: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda up: up,
    2: lambda up: up[:, ::-1],  # mirrored left-right
    3: lambda up: up[::-1, ::-1],  # rotated 180
    4: lambda up: up[::-1, :],  # mirrored top-bottom
    5: lambda up: up.transpose(1, 0, 2),  # transposed (mirrored across the main diagonal)
    6: lambda up: np.rot90(up, 1),  # shown after turning the stored picture 90 degrees clockwise
    7: lambda up: np.rot90(up, 2).transpose(1, 0, 2),  # transversed (mirrored across the anti-diagonal)
    8: lambda up: np.rot90(up, -1),  # shown after turning the stored picture 90 degrees counter-clockwise
}


def quadrant_picture(width: int = 48, height: int = 32) -> Image.Image:
    """An upright test picture whose four quadrants have four different colours (no symmetry survives)."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    h, w = height // 2, width // 2
    pixels[:h, :w] = (230, 20, 20)  # top left red
    pixels[:h, w:] = (20, 20, 230)  # top right blue
    pixels[h:, :w] = (20, 200, 20)  # bottom left green
    pixels[h:, w:] = (230, 230, 20)  # bottom right yellow
    return Image.fromarray(pixels)


def exif_rotated_jpeg(upright: Image.Image, orientation: int = 6, *, quality: int = 95) -> bytes:
    """JPEG bytes whose stored pixels need EXIF ``orientation`` to look like ``upright``."""
    stored = np.ascontiguousarray(_STORED[orientation](np.asarray(upright.convert("RGB"))))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


def quadrant_colours(image: Image.Image) -> np.ndarray:
    """Mean colour of each quadrant (top left, top right, bottom left, bottom right), shape (4, 3)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
    # Skip a margin around the centre lines: JPEG blurs the colour edges.
    m = max(1, min(h, w) // 4)
    parts = (
        pixels[: h - m, : w - m],
        pixels[: h - m, w + m :],
        pixels[h + m :, : w - m],
        pixels[h + m :, w + m :],
    )
    return np.stack([part.reshape(-1, 3).mean(axis=0) for part in parts])


def looks_upright(image: Image.Image, upright: Image.Image, *, tolerance: float = 24.0) -> bool:
    """Same size as ``upright`` and each quadrant within ``tolerance`` of its colour (JPEG is lossy)."""
    if image.size != upright.size:
        return False
    return bool(np.abs(quadrant_colours(image) - quadrant_colours(upright)).max() <= tolerance)
