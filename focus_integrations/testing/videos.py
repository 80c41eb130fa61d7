"""Small video clips made offline with PyAV, for tests and examples (needs the ``video`` extra).

Frame ``i`` of a clip from :func:`make_test_video` is one flat colour chosen by :func:`frame_level`, far enough
from its neighbours that a lossy codec cannot blur which frame it is: :func:`frame_number` reads it back.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

LEVEL_STEP = 11  # grey-level step between consecutive frames; 23 distinct frames fit in 0..253


def frame_level(index: int) -> int:
    """Grey level of frame ``index`` (wraps after 23 frames)."""
    return (index % 23) * LEVEL_STEP


def frame_number(frame: Image.Image) -> int:
    """The frame index (modulo 23) a decoded frame of :func:`make_test_video` shows."""
    return round(float(np.asarray(frame.convert("L"), dtype=np.float64).mean()) / LEVEL_STEP) % 23


def make_test_video(
    path: str | os.PathLike[str] | None = None,
    *,
    num_frames: int = 20,
    fps: int = 10,
    size: tuple[int, int] = (32, 24),
    container: str = "mp4",
    codec: str = "mpeg4",
) -> bytes:
    """Encode ``num_frames`` flat grey frames at ``fps``; write them to ``path`` if given; return the bytes.

    ``container="matroska"`` gives a file whose header declares no frame count (the decoder must count).
    """
    import av

    width, height = size
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(num_frames):
            pixels = np.full((height, width, 3), frame_level(index), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buffer.getvalue()
    if path is not None:
        with open(path, "wb") as handle:
            handle.write(data)
    return data
