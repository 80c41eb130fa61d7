"""Fixtures of the reliability suite: a real embedder, folders of good images, one `chroma run` per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60)}


def write_shape(path: Path, colour: str, shape: str, size: int = 40) -> Path:
    image = Image.new("RGB", (size, size), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    box = (size // 6, size // 6, size - size // 6, size - size // 6)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=COLOURS[colour])
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@pytest.fixture(scope="session")
def minilm():
    pytest.importorskip("chromadb")
    from focus_integrations.store import load_embedder

    return load_embedder("minilm")


@pytest.fixture
def shapes_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "shapes"
    for colour in COLOURS:
        for shape in ("circle", "square"):
            write_shape(folder / f"{colour}_{shape}.png", colour, shape)
    return folder


@pytest.fixture(scope="module")
def chroma_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real `chroma run` on loopback, shared by one module's tests, which may freeze, stop and restart it."""
    pytest.importorskip("chromadb")
    from focus_integrations.store.testing import ChromaServerProcess

    server = ChromaServerProcess(tmp_path_factory.mktemp("chroma-faults") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
