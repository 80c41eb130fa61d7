"""Fixtures of the reliability suite: a real embedder, folders of good images, one `chroma run` per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import COLOURS, write_shape


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
