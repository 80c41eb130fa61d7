"""The bundled default model answers through the LlamaIndex RAG path (retrieval by caption, pixels to FOCUS).

The default model reads bare easy-vqa questions; with one retrieved image there is nothing to leak from, so
its colour answers must match the catalog (the model card reports about 0.99 single-image colour accuracy).
"""

from __future__ import annotations

import json

import pytest
from llama_index.core import QueryBundle

from focus_integrations.llama_index import FocusMultiModalEmbedding, FocusMultiModalLLM
from focus_integrations.llama_index.rag import (
    IMAGES_THEN_QUESTION_PROMPT,
    build_multimodal_index,
    catalog_nodes,
    default_catalog_dir,
    multimodal_query_engine,
)

QUESTION = "What color is the shape in image 1? Answer with one word, or none if there is no shape."


@pytest.fixture(scope="module")
def default_llm() -> FocusMultiModalLLM:
    from focus_integrations.default_model import default_model_path

    # The model ships inside the package: a missing one is a broken install, a failure, not a skip.
    return FocusMultiModalLLM(default_model_path(), max_new_tokens=4, seed=0)


def test_default_model_reads_the_colour_of_the_retrieved_product(default_llm, tmp_path):
    embed = FocusMultiModalEmbedding("minilm")
    nodes = catalog_nodes(embed_model=embed, include_captions=False)  # the model must look at the pixels
    index = build_multimodal_index(nodes, embed_model=embed, chroma=tmp_path / "chroma")
    engine = multimodal_query_engine(
        index, default_llm, image_similarity_top_k=1, chat_content_qa_template=IMAGES_THEN_QUESTION_PROMPT
    )
    entries = json.loads((default_catalog_dir() / "catalog.json").read_text(encoding="utf-8"))
    entries = [e for e in entries if e["id"] == e["product_id"]]  # one photo per product (its first)
    correct = 0
    for entry in entries:
        response = engine.query(QueryBundle(query_str=QUESTION, custom_embedding_strs=[entry["caption"]]))
        retrieved = response.source_nodes[0].node.metadata
        # A colour variant of another product may match as well as the product itself: the truth is the
        # colour of the photo that was retrieved (and the model only sees that photo).
        assert retrieved["shape"] == entry["shape"]
        entry = {**entry, "colour": retrieved["colour"]}
        # The answer is one word, possibly restated as "image 1: red".
        words = response.response.replace(":", " ").split()
        correct += bool(words) and words[-1].strip(".") in (
            entry["colour"],
            {"grey": "gray"}.get(entry["colour"]),
        )
    assert correct >= 0.9 * len(entries)
