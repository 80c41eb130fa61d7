"""ChatFocus reads image groups (v1 ``extras`` or a top-level key) and video blocks, exactly as the engine."""

from __future__ import annotations

import base64
import io

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from PIL import Image

from focus_integrations.errors import InvalidOptionError, VideoLoadError


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _photos() -> list[Image.Image]:
    return [Image.new("RGB", (28, 24), colour) for colour in ("red", "darkred", "blue")]


def test_group_keys_on_image_blocks_reach_the_engine(llm) -> None:
    a1, a2, b = _photos()
    message = HumanMessage(
        content=[
            {"type": "image", "base64": _b64(a1), "mime_type": "image/png", "extras": {"group": "sku-1"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_b64(b)}"}},
            {"type": "image", "base64": _b64(a2), "mime_type": "image/png", "group": "sku-1"},
            {"type": "text", "text": "Which product is blue?"},
        ]
    )
    answer = llm.invoke([message])
    settings = answer.response_metadata["focus"]
    assert (settings["n_images"], settings["n_groups"], settings["n_rows"]) == (3, 2, 3)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": a1, "group": "sku-1"},
                {"type": "image", "image": b},
                {"type": "image", "image": a2, "group": "sku-1"},
                {"type": "text", "text": "Which product is blue?"},
            ],
        }
    ]
    expected = llm.focus_decoder.generate(messages=messages, max_new_tokens=8, seed=0)
    assert answer.content == expected.text


def test_video_blocks_and_video_options(llm, tmp_path) -> None:
    pytest.importorskip("av")
    from focus_integrations.testing.videos import make_test_video
    from focus_integrations.video import sample_frames

    data = make_test_video(tmp_path / "clip.mp4", num_frames=12)
    blocks = [
        {"type": "video", "base64": base64.b64encode(data).decode("ascii"), "mime_type": "video/mp4"},
        {"type": "file", "url": str(tmp_path / "clip.mp4"), "mime_type": "video/mp4"},
        {"type": "text", "text": "Which clip is brighter?"},
    ]
    per_frame = llm.invoke([HumanMessage(content=blocks)], num_frames=2)
    assert (
        per_frame.response_metadata["focus"]["n_images"],
        per_frame.response_metadata["focus"]["n_groups"],
    ) == (
        4,
        4,
    )
    per_video = llm.invoke([HumanMessage(content=blocks)], num_frames=2, video_masking="video")
    assert per_video.response_metadata["focus"]["n_groups"] == 2
    frames = sample_frames(data, num_frames=2)
    expected = llm.focus_decoder.generate(
        images=[frames, frames], prompt="Which clip is brighter?", max_new_tokens=8, seed=0, num_frames=2
    )
    assert per_video.content == expected.text
    with pytest.raises(VideoLoadError):
        llm.invoke(
            [HumanMessage(content=[{"type": "video", "base64": "AAAA", "mime_type": "video/mp4"}, "q"])]
        )
    with pytest.raises(InvalidOptionError):
        llm.invoke([HumanMessage(content=blocks)], video_masking="clip")
    with pytest.raises(InvalidOptionError, match="only supported in human"):
        llm.invoke([SystemMessage(content=[{"type": "video", "url": str(tmp_path / "clip.mp4")}])])
