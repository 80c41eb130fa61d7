"""Fixtures for the LlamaIndex adapter tests: one tiny Qwen2.5-VL decoder, distinct test images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from li_helpers import shape_image
from PIL import Image

pytest.importorskip("llama_index.core")


@pytest.fixture(scope="session")
def decoder(tiny_checkpoint: Callable[..., Path]):
    """The engine over the tiny random Qwen2.5-VL checkpoint (loaded once: every LLM in these tests shares it)."""
    from focus_integrations import FocusDecoder

    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"))


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    """Two clearly different images (the order matters to FOCUS: row k keeps image k clean)."""
    return [shape_image("red", "circle"), shape_image("blue", "triangle")]


@pytest.fixture
def image_files(tmp_path: Path, images: list[Image.Image]) -> list[Path]:
    paths = []
    for index, image in enumerate(images):
        path = tmp_path / f"image-{index}.png"
        image.save(path)
        paths.append(path)
    return paths
