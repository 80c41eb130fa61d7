"""The default model's training script: its CI smoke run, and determinism from the seed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from focus_integrations.testing.build_deps import easy_vqa_available, with_build_deps

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train_default_model.py"

# Training reads easy-vqa, a build-time dependency: from the environment or from $FOCUS_BUILD_DEPS.
pytestmark = pytest.mark.skipif(
    not easy_vqa_available(), reason="easy-vqa (build-time dependency) not installed; `make test` installs it"
)


def train(out: Path, *extra: str) -> Path:
    env = with_build_deps(dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--threads", "1", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_smoke_run_writes_a_checkpoint_the_engine_loads(tmp_path):
    from focus_integrations import FocusDecoder
    from focus_integrations.lab.data import load_lab_images

    out = train(tmp_path / "model")
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["smoke"] and summary["steps_done"] == summary["steps_planned"] == 20
    decoder = FocusDecoder.from_pretrained(out)
    images = [im.image for im in load_lab_images("val")[:2]]
    output = decoder.generate(images=images, prompt="What color is the shape in image 2?", max_new_tokens=3)
    assert output.settings["n_rows"] == 3 and output.usage.output_tokens >= 1


def test_training_is_deterministic_from_the_seed(tmp_path):
    short = ("--steps", "3", "--vision-steps", "2")
    first = train(tmp_path / "a", *short)
    again = train(tmp_path / "b", *short)
    other = train(tmp_path / "c", *short, "--seed", "1")
    assert digest(first) == digest(again)
    assert digest(first) != digest(other)
