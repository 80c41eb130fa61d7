"""examples/product_comparison_agent.py --compare: both modes get the same prompt, and the script prints
exactly what docs/langchain.md shows (no library output in between)."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from focus_integrations import FocusDecoder

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "product_comparison_agent.py"


def _shape(messages: list[dict[str, Any]]) -> list[Any]:
    """A prompt as comparable data: roles, texts and the images' pixels."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append((message["role"], content))
            continue
        for item in content:
            if item["type"] == "image":
                out.append((message["role"], np.asarray(Image.Image.convert(item["image"], "RGB")).tobytes()))
            else:
                out.append((message["role"], item.get("text")))
    return out


def test_both_modes_answer_from_the_same_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str | None, list[Any]]] = []
    real = FocusDecoder.stream

    def spy(self, *args, **kwargs):
        seen.append((kwargs.get("mode"), _shape(kwargs["messages"])))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FocusDecoder, "stream", spy)
    main = runpy.run_path(str(EXAMPLE), run_name="product_comparison_agent")["main"]
    for extra in ([], ["--tool-text"]):
        seen.clear()
        main(["--no-store", "--max-tokens", "4", "--compare", *extra])
        (focus_mode, focus_prompt), (vanilla_mode, vanilla_prompt) = seen  # the two answer steps
        assert (focus_mode, vanilla_mode) == ("focus", "vanilla")
        assert focus_prompt == vanilla_prompt
        assert [role for role, _ in focus_prompt] == ["user"] * 3  # photos then the question, no system turn


@pytest.mark.slow
def test_the_script_prints_what_the_docs_show(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--no-store", "--compare"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no weight-loading bar, no library warning
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model: ") and lines[1].startswith("catalog: folder ")
    assert lines[2].startswith("question: What color is the shape in image 2?")
    assert lines[4] == "-> tool call: find_product_images({'query': 'circle pendant'})"
    assert lines[5] == "<- tool result: 2 photos"
    assert lines[-3].startswith("answer (FOCUS): 'image 2 : ")
    import json

    from focus_integrations.default_model import default_model_path

    validated = json.loads((default_model_path() / "focus_config.json").read_text())["alpha"]
    alpha = validated["2"] if isinstance(validated, dict) else validated  # the default model's, for N = 2
    assert lines[-2] == f"FOCUS: 2 images, 3 rows, alpha {alpha}"
    assert lines[-1].startswith("answer (vanilla): 'image 2 : ")
