"""Retrieved photos of one product form one FOCUS group: the grouping rule, LangChain, and `focus query`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from focus_integrations.errors import InvalidOptionError
from focus_integrations.groups import metadata_group_keys
from focus_integrations.store import bundled_catalog_path

QUERY = "red circle pendant"  # the bundled catalog has three photos of it (front, back, side)


def test_metadata_group_keys() -> None:
    rows = [{"product_id": "a", "doc_id": "x"}, {"product_id": "b", "doc_id": "x"}, {"product_id": "a"}, {}]
    assert metadata_group_keys(rows) == ["a", None, "a", None]  # auto: product_id is shared, singletons stay
    assert metadata_group_keys(rows, "doc_id") == ["x", "x", None, None]
    assert metadata_group_keys(rows, None) == [None] * 4
    assert metadata_group_keys([{"product_id": "a"}, {"product_id": "b"}, {"doc_id": 7}, {"doc_id": 7}]) == [
        None,
        None,
        7,
        7,
    ]  # auto falls through to the first field that two images share
    with pytest.raises(InvalidOptionError):
        metadata_group_keys(rows, "")


@pytest.fixture(scope="module")
def catalog_store(tmp_path_factory: pytest.TempPathFactory, minilm):
    from focus_integrations.store import ImageStore

    store = ImageStore(tmp_path_factory.mktemp("groups") / "store", embedder=minilm)
    store.add_folder(bundled_catalog_path())
    return store


def test_langchain_rag_groups_the_photos_of_one_product(catalog_store, tiny_checkpoint) -> None:
    pytest.importorskip("langchain_core")
    from focus_integrations import FocusDecoder
    from focus_integrations.langchain import ChatFocus
    from focus_integrations.langchain.retriever import FocusImageRetriever, images_to_message

    documents = FocusImageRetriever(store=catalog_store, k=4).invoke(QUERY)
    products = [d.metadata["product_id"] for d in documents]
    assert products.count("sku-001") == 3 and len(set(products)) == 2
    message = images_to_message(documents, "Which one is red?", include_captions=False)
    blocks = [b for b in message.content if b["type"] == "image"]
    assert [b.get("extras", {}).get("group") for b in blocks] == [
        p if p == "sku-001" else None for p in products
    ]
    ungrouped = images_to_message(documents, "Which one is red?", group_by=None, include_captions=False)
    assert not any("extras" in b for b in ungrouped.content if b["type"] == "image")

    model = str(tiny_checkpoint("qwen2_5_vl"))
    answer = ChatFocus(model=model, max_tokens=3, seed=0).invoke([message])
    settings = answer.response_metadata["focus"]
    assert (settings["n_images"], settings["n_groups"], settings["n_rows"]) == (4, 2, 3)
    # Exactly the engine's answer over the same images grouped by product (retrieval order kept).
    paths = [d.metadata["image_path"] for d in documents]
    content = [
        {"type": "image", "image": path, **({"group": p} if p == "sku-001" else {})}
        for path, p in zip(paths, products)
    ]
    expected = FocusDecoder.from_pretrained(model).generate(
        messages=[{"role": "user", "content": [*content, {"type": "text", "text": "Which one is red?"}]}],
        max_new_tokens=3,
        seed=0,
    )
    assert answer.response_metadata["focus"]["n_rows"] == expected.settings["n_rows"]
    assert answer.content == expected.text


def test_focus_query_groups_by_product(tmp_path: Path, minilm, tiny_checkpoint: Callable[..., Path], capsys):
    from focus_integrations.cli import main

    store = str(tmp_path / "store")
    assert main(["index", str(bundled_catalog_path()), "--store", store, "--no-progress"]) == 0
    capsys.readouterr()
    args = ["query", QUERY, "--store", store, "--k", "4", "--retrieve-only"]
    assert main(args) == 0
    listed = capsys.readouterr().out.splitlines()
    assert sum("group sku-001)" in line for line in listed) == 3
    assert main([*args, "--group-by", "none"]) == 0
    assert ", group " not in capsys.readouterr().out
    model = str(tiny_checkpoint("qwen2_5_vl"))
    query = ["query", QUERY, "--store", store, "--k", "4", "--model", model, "--max-new-tokens", "2"]
    assert main([*query, "--alpha", "n-calibrated"]) == 0
    capsys.readouterr()
    assert main([*query, "--alpha", "often"]) == 2  # argparse's refusal: exactly one error line
    assert capsys.readouterr().err == (
        "focus: error: argument --alpha: alpha must be a number or 'n-calibrated', got 'often' "
        "(see 'focus query --help')\n"
    )
