"""docs/langchain.md: every ```python block runs, in order, in one namespace (offline, tiny checkpoint)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "langchain.md"


def test_docs_snippets_run(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("chromadb")
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 6
    namespace: dict[str, object] = {"__name__": "langchain_docs"}
    for index, block in enumerate(blocks):
        try:
            exec(compile(block, f"{DOC.name}[block {index}]", "exec"), namespace)
        except Exception as exc:  # name the failing block
            raise AssertionError(f"docs block {index} failed: {exc!r}\n{block}") from exc
    out = capsys.readouterr().out
    assert "4 5" in out and "vanilla" in out  # the image example's printed FOCUS rows and per-call mode
    assert namespace["result"]["documents"]  # RAG retrieved images
    messages = namespace["state"]["messages"]
    assert messages[-1].response_metadata["model_name"]  # the agent ran to an answer
