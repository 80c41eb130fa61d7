"""Vinoground (``HanSolo9682/Vinoground``, gated; 500 pairs of videos): the reference's ``eval/vinoground.py``.

Each video becomes ``num_frames`` (8) frames sampled uniformly (``int(i * total / num_frames)``, PyAV through
:func:`focus_integrations.video.sample_frames`), or is read from a pre-extracted frame folder
(``vinoground_frames/{index}_pos/``: the images sorted by name). Every frame is an image, as in the reference:
the text query holds 8 (FOCUS active, 9 rows), the video query 16 (17 rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from focus_integrations.errors import DatasetLayoutError
from focus_integrations.harness.benchmarks.common import (
    REFERENCE_MODE_GENERATION_NOISED,
    ab_protocols,
    pair_queries,
    prepare,
)
from focus_integrations.harness.spec import Benchmark, Layout, Metric, Protocol, Query, RowContext

SYSTEM = "You are an evaluator tasked with comparing video clips and captions to answer the question."
TEMPLATES = {
    "text": "Does this video show: (A): {caption_0} or (B): {caption_1}? Answer with A or B.",
    "image": "The first {n} frames are from Video A and the next {n} frames are from Video B. "
    'Which video better depicts: "{caption}"? Answer with A or B.',
}
VIDEO_DIRS = ("vinoground_videos", "videos", ".")
FRAME_DIRS = ("vinoground_frames", "frames")
_FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def video_frames(root: Path, name: str, num_frames: int) -> list[Image.Image]:
    """The frames of video ``name`` (e.g. ``"12_pos"``): a frame folder if extracted, else the mp4."""
    for folder in FRAME_DIRS:
        frames = root / folder / name
        if frames.is_dir():
            files = sorted(p for p in frames.iterdir() if p.suffix.lower() in _FRAME_SUFFIXES)
            if files:
                return [Image.open(p).convert("RGB") for p in files]
    for folder in VIDEO_DIRS:
        video = root / folder / f"{name}.mp4"
        if video.is_file():
            from focus_integrations.video import sample_frames

            return list(sample_frames(video, num_frames=num_frames))
    raise DatasetLayoutError(
        f"no frames for {name}: expected {root}/vinoground_videos/{name}.mp4 (unzip vinoground_videos.zip) "
        f"or a frame folder {root}/vinoground_frames/{name}/"
    )


def queries(row: Mapping[str, Any], protocol: Protocol, ctx: RowContext) -> list[Query]:
    index = row["index"]
    first = prepare(video_frames(ctx.root, f"{index}_pos", protocol.num_frames), protocol)
    second = prepare(video_frames(ctx.root, f"{index}_neg", protocol.num_frames), protocol)
    return pair_queries(
        ctx,
        protocol,
        first,
        second,
        (row["pos_cap"], row["neg_cap"]),
        image_key="video",
        breakdown={"category": str(row.get("major"))},
    )


BENCHMARK = Benchmark(
    name="vinoground",
    hub_id="HanSolo9682/Vinoground",
    revision="main",
    licence="Vinoground terms (gated; academic research only, no redistribution): never bundled",
    gated=True,
    layout=Layout(
        "csv",
        ("vinoground.csv",),
        "vinoground.csv (columns index, major, minor, pos_cap, neg_cap) + vinoground_videos/{index}_pos.mp4 and "
        "{index}_neg.mp4 (unzip vinoground_videos.zip) or vinoground_frames/{index}_pos/*.jpg",
        ("index", "pos_cap", "neg_cap"),
    ),
    protocols=ab_protocols(TEMPLATES, SYSTEM, REFERENCE_MODE_GENERATION_NOISED),
    queries=queries,
    primary="group",
    metrics={
        "text": Metric(("text_0", "text_1"), "all"),
        "video": Metric(("video_0", "video_1"), "all"),
        "group": Metric(("text_0", "text_1", "video_0", "video_1"), "all"),
    },
    breakdowns=("category",),
    row_id="index",
    category_column="major",
    notes=("text queries hold 8 frames, so FOCUS IS active on them (unlike Winoground/VisMin)",),
)
