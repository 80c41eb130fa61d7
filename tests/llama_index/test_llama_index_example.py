"""The LlamaIndex example runs offline end to end (on the tiny checkpoint, so the answer itself is junk)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llama_index_query_engine.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("llama_index_query_engine_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_answers_over_the_retrieved_catalog_images(tiny_checkpoint, tmp_path, capsys):
    example = _load_example()
    model = str(tiny_checkpoint("qwen2_5_vl"))
    argv = ["--model", model, "--max-new-tokens", "3", "--top-k", "2", "--chroma", str(tmp_path / "db")]
    assert example.main([*argv, "Is there a blue rectangle notebook?"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line for line in lines if line.strip()[:2] in ("1.", "2.")]
    assert len(listed) == 2 and "blue rectangle notebook" in listed[0]
    assert example.main([*argv, "--stream", "--mode", "vanilla", "a red circle pendant"]) == 0
    assert "red circle pendant" in capsys.readouterr().out


def test_example_reports_bad_options_without_a_traceback(tiny_checkpoint, capsys):
    example = _load_example()
    assert example.main(["--model", str(tiny_checkpoint("qwen2_5_vl")), "--alpha", "-1", "q"]) == 1
    assert "alpha" in capsys.readouterr().err
