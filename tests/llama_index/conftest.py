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


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread while these tests run (restored after each).

    On the small shared CPU box, two OpenMP threads contending with other processes made a 48-token decode
    of the tiny model take 0.7-6 s instead of 0.07 s (measured on the sync path, in the main thread).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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
