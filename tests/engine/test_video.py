"""video.sample_frames: PyAV decoding, the reference's uniform indices, fps sampling, clear errors."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from focus_integrations.errors import ImageLoadError, InvalidOptionError, VideoLoadError
from focus_integrations.video import frame_indices, sample_frames

av = pytest.importorskip("av")
from focus_integrations.testing.videos import frame_number, make_test_video  # noqa: E402


def _all_frames(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_reference_indices() -> None:
    assert frame_indices(20, 8) == [0, 2, 5, 7, 10, 12, 15, 17]
    assert frame_indices(8, 8) == list(range(8))
    assert frame_indices(3, 8) == [0, 0, 0, 1, 1, 1, 2, 2]  # a short clip repeats frames, as the reference
    assert frame_indices(0, 8) == []


@pytest.mark.parametrize("container", ["mp4", "matroska"])  # matroska declares no frame count
def test_uniform_sampling_matches_full_decode(tmp_path, container) -> None:
    path = tmp_path / f"clip.{container}"
    data = make_test_video(path, num_frames=20, container=container)
    every = _all_frames(data)
    for source in (str(path), path, data, f"file://{path}"):
        frames = sample_frames(source, num_frames=8)
        assert all(isinstance(f, Image.Image) and f.mode == "RGB" for f in frames)
        assert [frame_number(f) for f in frames] == [0, 2, 5, 7, 10, 12, 15, 17]
        for frame, index in zip(frames, frame_indices(20, 8)):
            np.testing.assert_array_equal(np.asarray(frame), every[index])
    assert [frame_number(f) for f in sample_frames(data, num_frames=8)] == [
        frame_number(f) for f in sample_frames(data, num_frames=8)
    ]  # deterministic


def test_fps_sampling(tmp_path) -> None:
    data = make_test_video(num_frames=20, fps=10)  # 2 s
    assert [frame_number(f) for f in sample_frames(data, fps=1)] == [0, 10]
    assert [frame_number(f) for f in sample_frames(data, fps=5, num_frames=None)] == list(range(0, 20, 2))
    assert len(sample_frames(data, fps=5, num_frames=4)) == 4  # num_frames caps fps sampling
    assert len(sample_frames(data, fps=0.01)) == 1  # at least one frame


def test_short_clip_and_frame_lists() -> None:
    data = make_test_video(num_frames=3)
    assert [frame_number(f) for f in sample_frames(data, num_frames=8)] == [0, 0, 0, 1, 1, 1, 2, 2]
    frames = [Image.new("RGB", (8, 8), (i, i, i)) for i in range(20)]
    picked = sample_frames(frames, num_frames=8)
    assert [f.getpixel((0, 0))[0] for f in picked] == [0, 2, 5, 7, 10, 12, 15, 17]
    assert picked[0] is not frames[0]
    few = [np.zeros((4, 4, 3), np.uint8), Image.new("L", (4, 4))]
    assert [f.mode for f in sample_frames(few, num_frames=8)] == ["RGB", "RGB"]  # shorter list: all of it


def test_errors(tmp_path) -> None:
    data = make_test_video(num_frames=10)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    cases = [b"", b"\x00garbage" * 50, data[:200], str(tmp_path / "missing.mp4"), str(text), 42, []]
    for bad in cases:
        with pytest.raises(VideoLoadError):
            sample_frames(bad)
    assert issubclass(VideoLoadError, ImageLoadError)
    with pytest.raises(VideoLoadError, match="frame 1"):
        sample_frames([Image.new("RGB", (4, 4)), "/no/such/frame.png"])
    with pytest.raises(VideoLoadError, match="remote"):
        sample_frames("https://example.com/clip.mp4")
    for options in ({"num_frames": 0}, {"num_frames": None}, {"fps": -1}, {"fps": float("nan")}):
        with pytest.raises(InvalidOptionError):
            sample_frames(data, **options)
    with pytest.raises(InvalidOptionError, match="frame rate"):
        sample_frames([Image.new("RGB", (4, 4))], fps=2)


def test_broken_file_never_hangs(tmp_path) -> None:
    """Every prefix of a real clip, and bit-flipped copies, fail (or decode) quickly in a child process."""
    path = tmp_path / "clip.mp4"
    make_test_video(path, num_frames=30)
    script = f"""
import random
from focus_integrations.video import sample_frames
from focus_integrations.errors import VideoLoadError
data = open({str(path)!r}, "rb").read()
rng = random.Random(0)
variants = [data[:n] for n in range(0, len(data), max(1, len(data) // 40))]
for _ in range(20):
    flipped = bytearray(data)
    for _ in range(30):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    variants.append(bytes(flipped))
for blob in variants:
    try:
        frames = sample_frames(blob, num_frames=8)
        assert len(frames) == 8
    except VideoLoadError:
        pass
print("ok", len(variants))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")


# ------------------------------------------------------------------------------------ video in requests


@pytest.fixture(scope="module")
def decoder():
    from focus_integrations import FocusDecoder
    from focus_integrations.testing.tiny_models import tiny_checkpoint

    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"), dtype="float32")


def test_video_items_are_their_sampled_frames(decoder, tmp_path) -> None:
    """Per frame (the reference, default): every frame its own image; per video: one group per video."""
    first, second = tmp_path / "a.mp4", tmp_path / "b.mkv"
    make_test_video(first, num_frames=12)
    make_test_video(second, num_frames=9, container="matroska")
    frames_a = sample_frames(str(first), num_frames=2)
    frames_b = sample_frames(str(second), num_frames=2)
    prompt = "Which video shows the brighter clip?"
    kwargs = dict(seed=4, max_new_tokens=3, num_frames=2)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": str(first)},
                {"type": "video", "path": second},
                {"type": "text", "text": prompt},
            ],
        }
    ]
    per_frame = decoder.generate(messages=messages, **kwargs)
    as_images = decoder.generate(images=frames_a + frames_b, prompt=prompt, **kwargs)
    assert per_frame.token_ids == as_images.token_ids
    assert (per_frame.settings["n_images"], per_frame.settings["n_groups"]) == (4, 4)

    per_video = decoder.generate(messages=messages, video_masking="video", **kwargs)
    as_groups = decoder.generate(images=[frames_a, frames_b], prompt=prompt, **kwargs)
    assert per_video.token_ids == as_groups.token_ids
    assert (per_video.settings["n_groups"], per_video.settings["n_rows"]) == (2, 3)
    shorthand = decoder.generate(
        videos=[str(first), frames_b], prompt=prompt, video_masking="video", **kwargs
    )
    assert shorthand.token_ids == as_groups.token_ids  # a list of frames is a video too


def test_video_options_and_errors(decoder, tmp_path) -> None:
    clip = tmp_path / "clip.mp4"
    make_test_video(clip, num_frames=20, fps=10)
    out = decoder.generate(videos=str(clip), prompt="q", max_new_tokens=1, num_frames=2)
    assert out.settings["n_images"] == 2 and out.settings["num_frames"] == 2
    out = decoder.generate(videos=[str(clip)], prompt="q", max_new_tokens=1, fps=2)  # 4 frames at 2 fps
    assert out.settings["n_images"] == 4
    with pytest.raises(VideoLoadError):
        decoder.generate(videos=[b"not a video"], prompt="q")
    for bad in ({"num_frames": 0}, {"fps": 0}, {"video_masking": "clip"}):
        with pytest.raises(InvalidOptionError):
            decoder.generate(videos=[str(clip)], prompt="q", **bad)
    with pytest.raises(InvalidOptionError, match="video item needs"):
        decoder.generate(messages=[{"role": "user", "content": [{"type": "video"}, "q"]}])
    with pytest.raises(InvalidOptionError, match="only allowed"):
        decoder.generate(
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "video", "video": str(clip)}]},
            ]
        )
