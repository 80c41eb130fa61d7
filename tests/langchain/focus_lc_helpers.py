"""Small image helpers shared by the ChatFocus tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import base64
import io

from PIL import Image


def png_bytes(color: str, size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def png_b64(color: str, size: tuple[int, int] = (32, 24)) -> str:
    return base64.b64encode(png_bytes(color, size)).decode()
