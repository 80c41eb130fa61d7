"""Video content items and the shorthand's image groups, as the image items the engine decodes.

A ``{"type": "video", "video": <path | bytes | data: URI | list of frames>}`` item (also under ``"path"`` or
``"url"``, as in transformers' chat format) is sampled with :func:`focus_integrations.video.sample_frames` and
becomes one image per frame, in order: the FOCUS reference treats every frame as an image (its Vinoground
runner: 8 frames per clip, each its own row). ``VideoSampling.masking`` chooses the groups: ``"frame"`` (the
reference, default) makes every frame its own FOCUS slot, ``"video"`` makes each video one group, so row k
keeps the whole of video k clean. A ``"group"`` key on a video item puts all its frames in that group;
``"num_frames"`` / ``"fps"`` keys on the item override the request's sampling for that video.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from focus_integrations.errors import InvalidOptionError
from focus_integrations.groups import GROUP_KEY, group_key, own_group, split_nested_images
from focus_integrations.options import DEFAULT_NUM_FRAMES, DecodingOptions
from focus_integrations.video import sample_frames

VIDEO_KEYS = ("video", "path", "url")


@dataclass(frozen=True)
class VideoSampling:
    """How video items become frames: how many (or at which rate) and how they are grouped for FOCUS."""

    num_frames: int = DEFAULT_NUM_FRAMES
    fps: float | None = None
    masking: str = "frame"

    @classmethod
    def from_options(cls, options: DecodingOptions) -> VideoSampling:
        return cls(
            num_frames=options.num_frames or DEFAULT_NUM_FRAMES,
            fps=options.fps,
            masking=options.video_masking or "frame",
        )


def is_video_item(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "video"


def video_frames(
    item: dict[str, Any], index: int, sampling: VideoSampling
) -> list[tuple[Image.Image, Hashable]]:
    """The sampled frames of one video item, each with its group key."""
    source = next((item[k] for k in VIDEO_KEYS if item.get(k) is not None), None)
    if source is None:
        raise InvalidOptionError(f"message {index}: a video item needs one of {', '.join(VIDEO_KEYS)}")
    # An item may set its own rate or count (LlamaIndex's VideoBlock carries an fps).
    fps = item.get("fps", sampling.fps)
    num_frames = item.get("num_frames", sampling.num_frames)
    frames = sample_frames(source, num_frames=num_frames, fps=fps)
    if item.get(GROUP_KEY) is not None or sampling.masking == "video":
        key = group_key(item, index)
        return [(frame, key) for frame in frames]
    return [(frame, own_group()) for frame in frames]


def shorthand_media_items(images: Sequence[Any] | None, videos: Sequence[Any] | None) -> list[dict[str, Any]]:
    """Content items of the shorthand: images (a nested list is one group), then videos."""
    items: list[dict[str, Any]] = [
        {"type": "image", "image": image, GROUP_KEY: key} for image, key in split_nested_images(images or ())
    ]
    for video in videos or ():
        items.append({"type": "video", "video": video})
    return items
