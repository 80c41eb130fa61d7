"""The store examples run end to end (offline, on the tiny checkpoint so the test stays fast)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_langchain_rag_chain_example(
    tmp_path: Path, tiny_checkpoint: Callable[..., Path], minilm, capsys
) -> None:
    example = _load("langchain_rag_chain")
    model = str(tiny_checkpoint("qwen2_5_vl"))
    args = [
        "what color is the notebook?",
        "--k",
        "3",
        "--store",
        str(tmp_path / "s"),
        "--model",
        model,
        "--max-new-tokens",
        "2",
        "--where",
        '{"category": "stationery"}',
    ]
    assert example.main(args) == 0
    out = capsys.readouterr().out
    listed = [line for line in out.splitlines() if line.startswith("  image ")]
    assert len(listed) == 3 and all("notebook" in line for line in listed)
    assert "Q: what color is the notebook?\nA: " in out


def test_store_product_comparison_example(
    tmp_path: Path, tiny_checkpoint: Callable[..., Path], minilm, capsys
) -> None:
    example = _load("store_product_comparison")
    model = str(tiny_checkpoint("qwen2_5_vl"))
    args = [
        "which is cheapest?",
        "--category",
        "jewellery",
        "--max-price",
        "20",
        "--store",
        str(tmp_path / "s"),
        "--model",
        model,
        "--max-new-tokens",
        "2",
    ]
    assert example.main(args) == 0
    out = capsys.readouterr().out
    products = [line for line in out.splitlines() if line.startswith("  ") and "sku-" in line]
    assert products and all("pendant" in line for line in products)
    assert all(float(line.split("$")[1].split()[0]) <= 20 for line in products)
    assert f"({len(products) + 1} rows" in out  # FOCUS: N + 1 rows
    assert "(1 rows" in out  # vanilla: one row
