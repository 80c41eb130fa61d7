"""Fixtures for the image store tests: real Chroma (embedded and a loopback server), real embedders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("chromadb")

from store_helpers import write_shape  # noqa: E402


@pytest.fixture(scope="session")
def minilm():
    """The offline default embedder, loaded once per test session."""
    from focus_integrations.store import load_embedder

    return load_embedder("minilm")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from focus_integrations.store.testing import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "clip-tiny")


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from focus_integrations.store.testing import build_tiny_siglip

    return build_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip") / "siglip-tiny")


@pytest.fixture
def make_store(tmp_path: Path, minilm) -> Callable[..., object]:
    """Factory of embedded stores, each on a fresh path (Chroma caches clients per path)."""
    from focus_integrations.store import ImageStore

    counter = iter(range(1000))

    def make(embedder=minilm, **kwargs):
        path = kwargs.pop("path", None) or tmp_path / f"store-{next(counter)}"
        return ImageStore(path, embedder=embedder, **kwargs)

    return make


@pytest.fixture
def shapes_dir(tmp_path: Path) -> Path:
    """Six distinct coloured shapes, captions from their file names."""
    folder = tmp_path / "shapes"
    for colour in ("red", "blue", "green"):
        for shape in ("circle", "square"):
            write_shape(folder / f"{colour}_{shape}.png", colour, shape)
    return folder


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` server on a free loopback port, for the tests of one module."""
    from focus_integrations.store.testing import chroma_server

    with chroma_server(tmp_path_factory.mktemp("chroma-server") / "data") as url:
        yield url
