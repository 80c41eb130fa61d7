"""The store examples run end to end (offline, on the tiny checkpoint so the test stays fast)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

from focus_integrations.store import bundled_catalog_path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CATALOG = {e["id"]: e for e in json.loads((bundled_catalog_path() / "catalog.json").read_text())}


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
        "--search",
        "notebook",
        "--k",
        "3",
        "--slot",
        "2",
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
    listed = [line.split()[2] for line in out.splitlines() if line.startswith("  image ")]
    assert len(listed) == 3 and all(CATALOG[sku]["category"] == "stationery" for sku in listed)
    assert "Q: What color is the shape in image 2? Answer with one word" in out
    # The printed ground truth is the catalog's colour of the second retrieved image.
    assert out.strip().splitlines()[-1] == f"catalog: {CATALOG[listed[1]]['colour']}"


def test_store_product_comparison_example(
    tmp_path: Path, tiny_checkpoint: Callable[..., Path], minilm, capsys
) -> None:
    example = _load("store_product_comparison")
    model = str(tiny_checkpoint("qwen2_5_vl"))
    args = [
        "--category",
        "jewellery",
        "--max-price",
        "20",
        "--k",
        "2",
        "--ask",
        "shape",
        "--store",
        str(tmp_path / "s"),
        "--model",
        model,
        "--max-new-tokens",
        "2",
    ]
    assert example.main(args) == 0
    out = capsys.readouterr().out
    products = [line.split()[1] for line in out.splitlines() if line.startswith("  ") and "sku-" in line]
    assert products and all(
        CATALOG[s]["category"] == "jewellery" and CATALOG[s]["price"] <= 20 for s in products
    )
    assert out.count("[focus  ]") == out.count("[vanilla]") == len(products)  # one question per image
    assert f"({len(products) + 1} rows" in out and "(1 rows" in out  # FOCUS: N + 1 rows; vanilla: one
    assert out.count("catalog: circle") == len(products)
