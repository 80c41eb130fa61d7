"""Image groups and video through LlamaIndex: GroupedImageBlock, the query engine's grouping, VideoBlock."""

from __future__ import annotations

import pytest
from li_helpers import llm_events_handler, shape_image
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock, VideoBlock
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.prompts.chat_prompts import CHAT_CONTENT_QA_PROMPT
from llama_index.core.schema import QueryBundle

from focus_integrations.llama_index import FocusMultiModalEmbedding, FocusMultiModalLLM, GroupedImageBlock
from focus_integrations.llama_index.conversion import chat_messages_to_engine
from focus_integrations.llama_index.rag import build_multimodal_index, catalog_nodes, multimodal_query_engine


@pytest.fixture
def llm(decoder) -> FocusMultiModalLLM:
    return FocusMultiModalLLM(decoder=decoder, max_new_tokens=4, seed=0)


@pytest.fixture
def photo_files(tmp_path):
    paths = []
    for name, colour, shape in (("a1", "red", "circle"), ("b", "blue", "triangle"), ("a2", "red", "square")):
        path = tmp_path / f"{name}.png"
        shape_image(colour, shape).save(path)
        paths.append(path)
    return paths


def test_grouped_image_blocks_reach_the_engine(llm, decoder, photo_files) -> None:
    a1, b, a2 = photo_files
    blocks = [
        GroupedImageBlock(path=a1, group="sku-1"),
        ImageBlock(path=b),
        GroupedImageBlock(path=a2, group="sku-1"),
        TextBlock(text="Which product is blue?"),
    ]
    response = llm.chat([ChatMessage(role="user", blocks=blocks)])
    settings = response.raw["settings"]
    assert (settings["n_images"], settings["n_groups"], settings["n_rows"]) == (3, 2, 3)
    content = [
        {"type": "image", "image": str(a1), "group": "sku-1"},
        {"type": "image", "image": str(b)},
        {"type": "image", "image": str(a2), "group": "sku-1"},
        {"type": "text", "text": "Which product is blue?"},
    ]
    expected = decoder.generate(messages=[{"role": "user", "content": content}], max_new_tokens=4, seed=0)
    assert response.message.content == expected.text


def test_groups_survive_llama_index_prompt_templates(photo_files) -> None:
    """Templates rebuild image blocks from their data URI: the group rides in it as a media-type parameter."""
    a1, b, _ = photo_files
    context = [ChatMessage(blocks=[GroupedImageBlock(path=a1, group="sku 1;x"), ImageBlock(path=b)])]
    messages = CHAT_CONTENT_QA_PROMPT.format_messages(context_messages=context, query_str="Which?")
    rebuilt = [block for m in messages for block in m.blocks if isinstance(block, ImageBlock)]
    assert [type(block) for block in rebuilt] == [ImageBlock, ImageBlock]  # plain blocks now
    items = [
        i for m in chat_messages_to_engine(messages) if isinstance(m["content"], list) for i in m["content"]
    ]
    assert [i.get("group") for i in items if i["type"] == "image"] == ["sku 1;x", None]


def test_query_engine_groups_retrieved_photos_by_product(llm, tmp_path) -> None:
    embed = FocusMultiModalEmbedding("minilm")
    index = build_multimodal_index(catalog_nodes(embed_model=embed), embed_model=embed, chroma=tmp_path / "c")
    handler = llm_events_handler()
    get_dispatcher().add_event_handler(handler)
    try:
        query = QueryBundle(query_str="Which is red?", custom_embedding_strs=["red circle pendant"])
        grouped = multimodal_query_engine(index, llm, image_similarity_top_k=4).query(query)
        ungrouped = multimodal_query_engine(index, llm, image_similarity_top_k=4, group_by=None).query(query)
    finally:
        get_dispatcher().event_handlers.remove(handler)
    products = [n.node.metadata["product_id"] for n in grouped.source_nodes]
    assert products.count("sku-001") == 3 and len(set(products)) == 2
    first, second = (end.response.raw["settings"] for end in handler.ends)
    assert (first["n_images"], first["n_groups"], first["n_rows"]) == (4, 2, 3)
    assert (second["n_images"], second["n_groups"], second["n_rows"]) == (4, 4, 5)
    assert [n.node.node_id for n in ungrouped.source_nodes] == [n.node.node_id for n in grouped.source_nodes]


def test_video_blocks_become_frames(llm, tmp_path) -> None:
    pytest.importorskip("av")
    from focus_integrations.testing.videos import make_test_video

    clip = tmp_path / "clip.mp4"
    data = make_test_video(clip, num_frames=20, fps=10)
    blocks = [VideoBlock(video=data, fps=1), VideoBlock(path=clip), TextBlock(text="Which is brighter?")]
    response = llm.chat([ChatMessage(role="user", blocks=blocks)], num_frames=3)
    settings = response.raw["settings"]
    assert settings["n_images"] == 2 + 3  # the block's fps=1 over 2 s gives 2 frames; the other num_frames=3
    grouped = llm.chat([ChatMessage(role="user", blocks=blocks)], num_frames=3, video_masking="video")
    assert grouped.raw["settings"]["n_groups"] == 2
