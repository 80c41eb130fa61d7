"""Video clips as lists of frames: decode with PyAV and sample frames the way the FOCUS reference does.

``sample_frames(source, num_frames=8)`` returns ``num_frames`` RGB ``PIL`` images taken at frame indices
``int(i * total / num_frames)`` for ``i = 0 .. num_frames-1`` (``total`` = frames in the clip), the indices of the
authors' reference code (``utils/video_utils.py``, used by their Vinoground runner) and of transformers' default
video sampler. A clip shorter than ``num_frames`` repeats frames there (the reference does the same); an
already-decoded list of frames shorter than ``num_frames`` is returned whole, as in the reference.

``fps=`` samples at a rate instead: ``count = int(total / clip_fps * fps)`` frames (at least one) at the same
uniform indices, with ``num_frames`` as the upper bound (``None`` for none) so that a long clip cannot turn into
thousands of images.

Sources: a filesystem path (``str``/``os.PathLike``), a ``file://`` URL, a ``data:`` URI, raw ``bytes``, or a list
(tuple) of frames in any form :func:`focus_integrations.images.load_image` accepts (PIL, numpy, path, bytes...).
Decoding needs the optional extra ``video`` (``pip install focus-integrations[video]``, which brings PyAV).

Every failure is a :class:`VideoLoadError` (a subclass of :class:`ImageLoadError`): missing file, not a video,
no video stream, truncated data that yields no frame, frames too large. Decoding stops at the last frame it
needs, and PyAV reads local data only, so a broken file fails fast instead of hanging.
"""

from __future__ import annotations

import io
import os
import urllib.parse
from collections.abc import Sequence
from typing import Any

from PIL import Image

from focus_integrations.errors import ImageLoadError, InvalidOptionError, VideoLoadError
from focus_integrations.images import MAX_IMAGE_PIXELS, load_image
from focus_integrations.images import _decode_data_uri as decode_data_uri

__all__ = ["VideoLoadError", "frame_indices", "sample_frames"]


def frame_indices(total: int, num_frames: int) -> list[int]:
    """The reference's uniform indices ``int(i * total / num_frames)``, clamped to the last frame."""
    if total <= 0 or num_frames <= 0:
        return []
    return [min(int(i * total / num_frames), total - 1) for i in range(num_frames)]


def sample_frames(source: Any, *, num_frames: int | None = 8, fps: float | None = None) -> list[Image.Image]:
    """Frames of ``source`` as RGB images (new objects), sampled uniformly; see the module docstring."""
    _check_counts(num_frames, fps)
    if isinstance(source, (list, tuple)):
        return _from_frame_list(source, num_frames=num_frames, fps=fps)
    data, origin = _read_source(source)
    return _decode(data, origin, num_frames=num_frames, fps=fps)


def _check_counts(num_frames: int | None, fps: float | None) -> None:
    if num_frames is not None and (isinstance(num_frames, bool) or not isinstance(num_frames, int)):
        raise InvalidOptionError(f"num_frames must be a positive integer or None, got {num_frames!r}")
    if num_frames is not None and num_frames < 1:
        raise InvalidOptionError(f"num_frames must be >= 1, got {num_frames}")
    if fps is None:
        if num_frames is None:
            raise InvalidOptionError("give num_frames or fps (both None samples nothing)")
        return
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0 or fps == float("inf"):
        raise InvalidOptionError(f"fps must be a positive finite number, got {fps!r}")


def _from_frame_list(
    frames: Sequence[Any], *, num_frames: int | None, fps: float | None
) -> list[Image.Image]:
    if fps is not None:
        raise InvalidOptionError(
            "fps sampling needs a decoded clip with a frame rate; a list of frames has none (use num_frames)"
        )
    if not frames:
        raise VideoLoadError("video given as an empty list of frames")
    if num_frames is None or len(frames) <= num_frames:
        chosen = list(frames)
    else:
        chosen = [frames[i] for i in frame_indices(len(frames), num_frames)]
    out = []
    for position, frame in enumerate(chosen):
        try:
            out.append(load_image(frame))
        except VideoLoadError:
            raise
        except ImageLoadError as err:
            raise VideoLoadError(f"video frame {position}: {err}") from None
    return out


def _read_source(source: Any) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "bytes"
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise VideoLoadError(
            f"unsupported video type {type(source).__name__}: pass a path, bytes, a data: URI or a list of frames"
        )
    lowered = source[:16].lower()
    if lowered.startswith("data:"):
        try:
            return decode_data_uri(source), "data URI"
        except ImageLoadError as err:
            raise VideoLoadError(str(err)) from None
    if lowered.startswith(("http://", "https://")):
        raise VideoLoadError(f"remote video URLs are not fetched: {source[:80]} (download it first)")
    if lowered.startswith("file://"):
        parsed = urllib.parse.urlparse(source)
        if parsed.netloc not in ("", "localhost"):
            raise VideoLoadError(f"file:// URL with a remote host is not supported: {source[:80]}")
        source = urllib.parse.unquote(parsed.path)
    if not os.path.isfile(source):
        raise VideoLoadError(f"video file not found: {source}")
    try:
        with open(source, "rb") as handle:
            return handle.read(), source
    except OSError as err:
        raise VideoLoadError(f"cannot read video file {source}: {err}") from None


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise VideoLoadError(
            "decoding video needs PyAV: pip install 'focus-integrations[video]' (or pass a list of frames)"
        ) from None
    return av


def _decode(data: bytes, origin: str, *, num_frames: int | None, fps: float | None) -> list[Image.Image]:
    if not data:
        raise VideoLoadError(f"empty video data ({origin})")
    av = _import_av()
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise VideoLoadError(f"no video stream in {origin}")
            stream = container.streams.video[0]
            width, height = _declared_size(stream)
            if width * height > MAX_IMAGE_PIXELS:
                raise VideoLoadError(
                    f"video frames are too large: {width}x{height} > {MAX_IMAGE_PIXELS} pixels ({origin})"
                )
            rate = float(stream.average_rate or stream.guessed_rate or 0) or None
            declared = int(stream.frames or 0)
        # The declared count is only a header field (0 for some containers, wrong for truncated files): when it
        # is missing, count the frames first; when decoding ends early, sample again over what really decoded.
        total = declared or _count_frames(av, data)
        wanted = _wanted_indices(total, rate, num_frames=num_frames, fps=fps, origin=origin)
        frames, ran_out_at = _decode_indices(av, data, set(wanted), origin)
        if ran_out_at is not None:
            wanted = _wanted_indices(ran_out_at, rate, num_frames=num_frames, fps=fps, origin=origin)
            frames, _ = _decode_indices(av, data, set(wanted), origin)
    except VideoLoadError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as err:
        raise VideoLoadError(f"cannot decode video ({origin}): {err}") from None
    return [frames[i].copy() for i in wanted]


def _declared_size(stream: Any) -> tuple[int, int]:
    # A damaged header can leave a stream without a codec context; the per-frame check still applies then.
    context = getattr(stream, "codec_context", None)
    return int(getattr(context, "width", 0) or 0), int(getattr(context, "height", 0) or 0)


def _wanted_indices(
    total: int, rate: float | None, *, num_frames: int | None, fps: float | None, origin: str
) -> list[int]:
    if total <= 0:
        raise VideoLoadError(f"no frame could be decoded from {origin}")
    if fps is None:
        return frame_indices(total, num_frames)
    if rate is None:
        raise VideoLoadError(f"{origin} has no frame rate, so fps sampling is impossible (use num_frames)")
    count = max(1, int(total / rate * fps))
    if num_frames is not None:
        count = min(count, num_frames)
    return frame_indices(total, count)


def _count_frames(av: Any, data: bytes) -> int:
    count = 0
    with av.open(io.BytesIO(data), mode="r") as container:
        for _ in container.decode(video=0):
            count += 1
    return count


def _decode_indices(
    av: Any, data: bytes, wanted: set[int], origin: str
) -> tuple[dict[int, Image.Image], int | None]:
    """Decode frames in order up to the last wanted index.

    Returns the wanted frames, and ``None`` when every wanted index was reached, else the number of frames the
    clip really holds (it ended before the last wanted index).
    """
    last = max(wanted)
    frames: dict[int, Image.Image] = {}
    index = -1
    with av.open(io.BytesIO(data), mode="r") as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                if frame.width * frame.height > MAX_IMAGE_PIXELS:
                    raise VideoLoadError(
                        f"video frames are too large: {frame.width}x{frame.height} > {MAX_IMAGE_PIXELS} pixels "
                        f"({origin})"
                    )
                frames[index] = frame.to_image().convert("RGB")
            if index >= last:
                return frames, None
    return frames, index + 1
