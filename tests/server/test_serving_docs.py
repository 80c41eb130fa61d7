"""The client snippets of docs/serving.md run as written (against the real test server)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from tests.server.conftest import MODEL_ID

DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def test_client_snippets_run(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    section = DOC.read_text().split("## Clients, unchanged")[1].split("## Scale-out")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 5
    code = "\n".join(blocks)
    assert 'BASE_URL = "http://127.0.0.1:8000/v1"' in code and 'MODEL = "qwen-focus"' in code
    code = code.replace("http://127.0.0.1:8000/v1", f"{server}/v1").replace('"qwen-focus"', f'"{MODEL_ID}"')
    Image.new("RGB", (40, 30), "red").save(tmp_path / "photo_a.png")
    Image.new("RGB", (30, 40), "green").save(tmp_path / "photo_b.png")
    monkeypatch.chdir(tmp_path)
    # dont_inherit: the snippets run as a user runs them, without this module's `from __future__` flags
    exec(compile(code, str(DOC), "exec", dont_inherit=True), {"__name__": "serving_docs"})
    out = capsys.readouterr().out
    assert " 3\n" in out  # n_rows of a 2-image FOCUS request
    assert "usage: 64" in out
    assert "get_price" in out
    assert re.search(r"parsed: (first|second)\n", out)
    assert "'output_tokens': 64" in out
