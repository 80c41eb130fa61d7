"""``focus ask`` end to end, in a subprocess, on a tiny checkpoint."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image

from focus_integrations.testing.tiny_models import tiny_checkpoint


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "focus_integrations.cli", *args], capture_output=True, text=True, timeout=180
    )


def test_ask_focus_and_stream(tmp_path) -> None:
    paths = []
    for i, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (32 + i, 28), colour).save(path)
        paths.append(str(path))
    model = str(tiny_checkpoint("qwen2_5_vl"))
    base = [
        "ask",
        "--model",
        model,
        "--image",
        paths[0],
        "--image",
        paths[1],
        "--seed",
        "1",
        "--max-new-tokens",
        "5",
    ]
    plain = _run(*base, "Which one is red?")
    assert plain.returncode == 0, plain.stderr
    assert "[focus: 2 images, 3 rows, " in plain.stderr
    streamed = _run(*base, "--stream", "Which one is red?")
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == plain.stdout  # same seed, same greedy answer, streamed or not
    vanilla = _run(*base, "--mode", "vanilla", "Which one is red?")
    assert "[vanilla: 2 images, 1 rows, " in vanilla.stderr


def test_bad_option_is_one_line(tmp_path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (20, 20)).save(path)
    result = _run("ask", "--model", str(tmp_path / "nowhere"), "--image", str(path), "q")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("focus: error: no model folder at")
    assert "Traceback" not in result.stderr
