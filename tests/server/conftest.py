"""A real ``focus serve`` process on a free loopback port, images, and an in-process decoder for reference.

One server process serves every client test of the session (loading a model costs seconds on 2 shared
cores); tests that need other settings (auth, limits, queues) build an app in-process.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
MODEL_ID = "tiny-qwen"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_process(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 180
) -> Iterator[str]:
    """Run ``focus serve ARGS --port <free>`` and yield its base URL once /health answers; stop it after."""
    port = free_port()
    environment = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    environment.update(env or {})
    stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"focus-serve-{port}.log"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "focus_integrations.cli", "serve", "--port", str(port), *args],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"focus serve exited with {process.returncode}:\n{stderr_path.read_text()}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"focus serve did not start in {timeout} s:\n{stderr_path.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stderr_path.unlink(missing_ok=True)


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
