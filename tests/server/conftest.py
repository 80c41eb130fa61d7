"""A real ``focus serve`` process on a free loopback port, images, and an in-process decoder for reference.

One server process serves every client test of the session (loading a model costs seconds on 2 shared
cores); tests that need other settings (auth, limits, queues) build an app in-process.
"""

from __future__ import annotations

import base64
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image

from focus_integrations.testing.http_process import free_port, http_process

__all__ = [
    "free_port",
    "serve_process",
    "data_uri",
    "image_part",
    "wait_for",
    "two_image_messages",
    "MODEL_ID",
    "QUESTION",
]

REPO = Path(__file__).resolve().parents[2]
MODEL_ID = "tiny-qwen"
QUESTION = "Which product is cheaper?"


@contextmanager
def serve_process(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 180
) -> Iterator[str]:
    """Run ``focus serve ARGS --port <free>`` and yield its base URL once /health answers; stop it after."""
    port = free_port()
    environment = {"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **(env or {})}
    command = [sys.executable, "-m", "focus_integrations.cli", "serve", "--port", str(port), *args]
    url = f"http://127.0.0.1:{port}"
    with http_process(command, f"{url}/health", env=environment, timeout=timeout):
        yield url


@pytest.fixture(scope="session")
def qwen_path(tiny_checkpoint: Callable[..., Path]) -> str:
    return str(tiny_checkpoint("qwen2_5_vl"))


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the server may read file:// images from, with two photos in it."""
    folder = tmp_path_factory.mktemp("media")
    Image.new("RGB", (30, 20), "red").save(folder / "red.png")
    Image.new("RGB", (20, 30), "blue").save(folder / "blue.png")
    return folder


@pytest.fixture(scope="session")
def server(qwen_path: str, media_dir: Path) -> Iterator[str]:
    """Base URL of a real ``focus serve`` process (tiny Qwen2.5-VL, one torch thread)."""
    args = ["--model", qwen_path, "--served-model-name", MODEL_ID, "--threads", "1"]
    args += ["--allowed-local-media-path", str(media_dir), "--max-image-pixels", "250000"]
    with serve_process(args) as url:
        yield url


@pytest.fixture(scope="session")
def reference_decoder(qwen_path: str):
    """The same checkpoint in this process: what the server must answer, decoded directly."""
    from focus_integrations import FocusDecoder

    torch.set_num_threads(1)
    return FocusDecoder.from_pretrained(qwen_path)


def data_uri(color: str, size: tuple[int, int] = (32, 32)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def two_image_messages() -> list[dict]:
    """One user turn: a red 32x24 and a blue 24x32 image, then ``QUESTION``."""
    content = [image_part(data_uri("red", (32, 24))), image_part(data_uri("blue", (24, 32)))]
    return [{"role": "user", "content": [*content, {"type": "text", "text": QUESTION}]}]


def two_image_request() -> dict:
    """What ``two_image_messages`` asks, as ``FocusDecoder.generate`` / ``engine.submit`` keywords."""
    return {
        "images": [Image.new("RGB", (32, 24), "red"), Image.new("RGB", (24, 32), "blue")],
        "prompt": QUESTION,
    }


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
