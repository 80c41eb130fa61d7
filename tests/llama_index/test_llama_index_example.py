"""The LlamaIndex example runs offline end to end (on the tiny checkpoint, so the answer itself is junk)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llama_index_query_engine.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("llama_index_query_engine_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _listed(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.strip().startswith("image ")]


def test_example_retrieves_with_the_search_text_and_asks_the_question(tiny_checkpoint, tmp_path, capsys):
    example = _load_example()
    model = str(tiny_checkpoint("qwen2_5_vl"))
    argv = ["--model", model, "--max-new-tokens", "3", "--chroma", str(tmp_path / "db")]
    assert (
        example.main([*argv, "--top-k", "2", "--search", "blue rectangle notebook", "What is in image 1?"])
        == 0
    )
    out = capsys.readouterr().out
    listed = _listed(out)
    assert len(listed) == 2 and "blue rectangle notebook" in listed[0]
    assert "Q: What is in image 1?" in out
    # Captions and LlamaIndex's QA prompt, streamed, plain decoding: the retrieval follows the question.
    assert example.main([*argv, "--captions", "--stream", "--mode", "vanilla", "a red circle pendant"]) == 0
    listed = _listed(capsys.readouterr().out)
    assert len(listed) == 3 and "red circle pendant" in listed[0]


def test_example_reports_bad_options_without_a_traceback(tiny_checkpoint, capsys):
    example = _load_example()
    assert example.main(["--model", str(tiny_checkpoint("qwen2_5_vl")), "--alpha", "-1", "q"]) == 1
    assert "alpha" in capsys.readouterr().err


@pytest.mark.slow
def test_default_example_decodes_with_the_checkpoints_alpha_and_answers_red(capsys):
    # --alpha defaults to None: "not set", so the default model's validated alpha (focus_config.json) applies.
    example = _load_example()
    assert example.main([]) == 0
    answer = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("A: "))
    assert "red" in answer and "none" not in answer
