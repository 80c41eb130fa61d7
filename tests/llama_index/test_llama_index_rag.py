"""Multimodal RAG end to end: the bundled catalog in a real embedded Chroma (fresh folder per test), real
MiniLM embeddings (and a tiny random CLIP for the pixel path), LlamaIndex's RetrieverQueryEngine, and the tiny
Qwen2.5-VL through FocusMultiModalLLM. The answers are junk (random weights); the tests check that the
retrieved images are the ones that reach the engine, all in one FOCUS call.
"""

from __future__ import annotations

import json
from pathlib import Path

import chromadb
import pytest
from li_helpers import llm_events_handler, png_bytes, same_pixels
from llama_index.core.base.response.schema import AsyncStreamingResponse, Response, StreamingResponse
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
from llama_index.core.llms import ImageBlock
from llama_index.core.schema import ImageNode
from PIL import Image

from focus_integrations.errors import ImageLoadError, InvalidOptionError
from focus_integrations.llama_index import FocusMultiModalEmbedding, FocusMultiModalLLM
from focus_integrations.llama_index.conversion import image_block_to_pil
from focus_integrations.llama_index.rag import (
    DEFAULT_IMAGE_COLLECTION,
    IMAGES_THEN_QUESTION_PROMPT,
    build_multimodal_index,
    catalog_nodes,
    default_catalog_dir,
    multimodal_query_engine,
    open_multimodal_index,
)
from focus_integrations.store.errors import EmbedderCapabilityError
from focus_integrations.store.image_store import CHROMA_SETTINGS

TOP_K = 3


@pytest.fixture
def llm_events():
    handler = llm_events_handler()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    yield handler
    dispatcher.event_handlers.remove(handler)


@pytest.fixture(scope="session")
def minilm() -> FocusMultiModalEmbedding:
    return FocusMultiModalEmbedding("minilm")


@pytest.fixture(scope="session")
def nodes(minilm) -> list[ImageNode]:
    return catalog_nodes(embed_model=minilm)


@pytest.fixture
def chroma_path(tmp_path: Path) -> Path:
    return tmp_path / "chroma"


@pytest.fixture
def index(nodes, minilm, chroma_path):
    return build_multimodal_index(nodes, embed_model=minilm, chroma=chroma_path)


@pytest.fixture
def llm(decoder) -> FocusMultiModalLLM:
    return FocusMultiModalLLM(decoder=decoder, max_new_tokens=5, seed=0)


def _catalog_entries() -> list[dict]:
    return json.loads((default_catalog_dir() / "catalog.json").read_text(encoding="utf-8"))


def _images_sent(event: LLMChatStartEvent) -> list[Image.Image]:
    return [image_block_to_pil(b) for m in event.messages for b in m.blocks if isinstance(b, ImageBlock)]


def _assert_retrieved_images_reached_the_engine(events, source_nodes) -> None:
    # One LLM call carries every retrieved image, in retrieval order, and the engine decoded over all of them.
    assert len(events.starts) == 1 and len(events.ends) == 1
    sent = _images_sent(events.starts[0])
    retrieved = [Image.open(n.node.image_path) for n in source_nodes]
    assert len(sent) == len(retrieved) == TOP_K
    assert all(same_pixels(a, b) for a, b in zip(sent, retrieved))
    settings = events.ends[0].response.raw["settings"]
    assert settings["n_images"] == TOP_K
    # multimodal_query_engine groups the photos of one product (group_by="auto"): one row per group, plus
    # the all-noise row (a single group decodes plainly, one row). Chat engines do not group.
    groups = len({getattr(n.node, "group", None) or n.node.node_id for n in source_nodes})
    assert settings["n_groups"] == groups
    assert settings["n_rows"] == (groups + 1 if groups > 1 else 1)


def test_catalog_nodes_follow_the_bundled_catalog(nodes, minilm):
    entries = _catalog_entries()
    assert [n.node_id for n in nodes] == sorted(
        (e["id"] for e in entries), key=lambda i: _file_of(entries, i)
    )
    by_id = {e["id"]: e for e in entries}
    for node in nodes:
        entry = by_id[node.node_id]
        assert node.metadata["caption"] == entry["caption"]
        assert Path(node.image_path).name == entry["file"] and Path(node.image_path).is_file()
        assert node.image is None and node.text == ""
        assert len(node.embedding) == minilm.dim
        # The model sees caption and product fields next to the picture, not the bookkeeping file name.
        llm_text = node.get_metadata_str(mode="llm")
        assert entry["caption"] in llm_text and "file_name" not in llm_text


def _file_of(entries: list[dict], record_id: str) -> str:
    return next(e["file"] for e in entries if e["id"] == record_id)


def test_catalog_nodes_read_any_folder_and_skip_broken_images(tmp_path, minilm):
    from li_helpers import shape_image

    (tmp_path / "shop" / "hats").mkdir(parents=True)
    shape_image("red", "circle").save(tmp_path / "shop" / "hats" / "cap.png")
    shape_image("blue", "square").save(tmp_path / "shop" / "box.png")
    (tmp_path / "shop" / "box.png.txt").write_text("a blue box", encoding="utf-8")
    shape_image("green", "triangle").save(tmp_path / "shop" / "green_flag-large.png")
    (tmp_path / "shop" / "broken.png").write_bytes(png_bytes(shape_image("red", "square"))[:40])
    # A parent folder's catalog names a nested file by its relative path.
    catalog = [
        {"file": "hats/cap.png", "id": "hat-1", "caption": "a red cap", "tags": ["hat", "red"], "size": None}
    ]
    (tmp_path / "shop" / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")

    with pytest.warns(UserWarning, match="broken.png"):
        nodes = catalog_nodes(tmp_path / "shop", embed_model=minilm)
    by_id = {node.node_id: node for node in nodes}
    assert sorted(by_id) == ["box.png", "green_flag-large.png", "hat-1"]
    assert by_id["hat-1"].metadata["caption"] == "a red cap"
    assert by_id["hat-1"].metadata["tags"] == "hat, red" and "size" not in by_id["hat-1"].metadata
    assert by_id["box.png"].metadata["caption"] == "a blue box"
    assert by_id["green_flag-large.png"].metadata["caption"] == "green flag large"
    # The caption embedding is what MiniLM gives for the caption and metadata text.
    assert by_id["box.png"].embedding == pytest.approx(minilm.get_text_embedding("a blue box"), abs=1e-6)
    with pytest.raises(ImageLoadError):
        catalog_nodes(tmp_path / "shop", skip_unreadable=False)


def test_text_queries_find_the_matching_catalog_image(index):
    retriever = index.as_retriever(image_similarity_top_k=TOP_K)
    entries = _catalog_entries()
    for entry in entries[:6]:
        hits = retriever.retrieve(entry["caption"])
        assert all(isinstance(hit.node, ImageNode) for hit in hits)
        # Photos of one product (views, colour variants) are near-equal matches: the product comes first.
        assert hits[0].node.metadata["product_id"] == entry["product_id"]
        assert entry["id"] in [hit.node.node_id for hit in hits]


def test_chroma_holds_image_paths_never_inline_images(index, nodes, chroma_path):
    client = chromadb.PersistentClient(path=str(chroma_path), settings=CHROMA_SETTINGS)
    records = client.get_collection(DEFAULT_IMAGE_COLLECTION).get(include=["metadatas", "embeddings"])
    assert sorted(records["ids"]) == sorted(n.node_id for n in nodes)
    for metadata in records["metadatas"]:
        content = json.loads(metadata["_node_content"])
        assert content["image"] is None and Path(content["image_path"]).is_file()
        assert max(len(str(v)) for v in metadata.values()) < 4000  # no base64 payload anywhere
    assert all(len(vector) == 384 for vector in records["embeddings"])


def test_query_engine_sends_every_retrieved_image_to_one_focus_call(index, llm, llm_events):
    engine = multimodal_query_engine(index, llm, image_similarity_top_k=TOP_K)
    response = engine.query("Which of these is the red circle pendant?")
    assert isinstance(response, Response)
    assert all(isinstance(n.node, ImageNode) for n in response.source_nodes)
    assert response.source_nodes[0].node.metadata["caption"].startswith("red circle pendant")
    _assert_retrieved_images_reached_the_engine(llm_events, response.source_nodes)
    assert response.response == llm_events.ends[0].response.message.content


def test_paper_protocol_prompt_sends_only_images_then_the_question(minilm, llm, llm_events, tmp_path):
    bare = catalog_nodes(embed_model=minilm, include_captions=False)
    index = build_multimodal_index(bare, embed_model=minilm, chroma=tmp_path / "bare")
    question = "What color is the shape in image 2?"
    engine = multimodal_query_engine(
        index, llm, image_similarity_top_k=TOP_K, chat_content_qa_template=IMAGES_THEN_QUESTION_PROMPT
    )
    response = engine.query(question)
    _assert_retrieved_images_reached_the_engine(llm_events, response.source_nodes)
    (message,) = llm_events.starts[0].messages  # one user turn, no system prompt
    assert message.role == "user"
    assert [b.block_type for b in message.blocks] == ["image"] * TOP_K + ["text"]
    assert message.blocks[-1].text.strip() == question
    # Retrieval still used the captions (hidden from the model only).
    assert response.source_nodes[0].node.metadata["caption"]


def test_captions_reach_the_model_by_default(index, llm, llm_events):
    response = multimodal_query_engine(index, llm, image_similarity_top_k=TOP_K).query("a blue pendant")
    text = "\n".join(
        b.text for m in llm_events.starts[0].messages for b in m.blocks if b.block_type == "text"
    )
    assert all(f"caption: {n.node.metadata['caption']}" in text for n in response.source_nodes)
    assert "file_name" not in text


def test_many_images_still_go_to_one_call(index, llm, llm_events):
    # LlamaIndex budgets 2125 tokens per image: on this 8k-context model its own packing splits 6 images
    # over two calls, which would leave FOCUS contrasting only 3 at a time.
    many = 6
    multimodal_query_engine(index, llm, image_similarity_top_k=many, images_in_one_call=False).query(
        "a pendant"
    )
    assert len(llm_events.ends) > 1
    llm_events.starts.clear()
    llm_events.ends.clear()
    response = multimodal_query_engine(index, llm, image_similarity_top_k=many).query("a pendant")
    assert len(llm_events.ends) == 1 and len(response.source_nodes) == many
    assert llm_events.ends[0].response.raw["settings"]["n_images"] == many


def test_streaming_query_engine_streams_the_focus_answer(index, llm, llm_events):
    engine = multimodal_query_engine(index, llm, image_similarity_top_k=TOP_K, streaming=True)
    response = engine.query("Which of these is the blue triangle pennant?")
    assert isinstance(response, StreamingResponse)
    streamed = "".join(response.response_gen)
    _assert_retrieved_images_reached_the_engine(llm_events, response.source_nodes)
    assert streamed == llm_events.ends[0].response.message.content


async def test_async_query_engine(index, llm, llm_events):
    engine = multimodal_query_engine(index, llm, image_similarity_top_k=TOP_K)
    response = await engine.aquery("Show me a green rectangle notebook")
    assert isinstance(response, Response)
    _assert_retrieved_images_reached_the_engine(llm_events, response.source_nodes)


async def test_async_streaming_query_engine(index, llm, llm_events):
    engine = multimodal_query_engine(index, llm, image_similarity_top_k=TOP_K, streaming=True)
    response = await engine.aquery("Show me a yellow triangle pennant")
    assert isinstance(response, AsyncStreamingResponse)
    streamed = "".join([delta async for delta in response.async_response_gen()])
    _assert_retrieved_images_reached_the_engine(llm_events, response.source_nodes)
    assert streamed == llm_events.ends[0].response.message.content


def test_context_chat_engine_keeps_retrieved_images_across_turns(index, llm, llm_events):
    engine = index.as_chat_engine(chat_mode="context", llm=llm, image_similarity_top_k=TOP_K)
    first = engine.chat("Which of these is the red circle pendant?")
    _assert_retrieved_images_reached_the_engine(llm_events, first.source_nodes)
    llm_events.starts.clear()
    llm_events.ends.clear()
    second = engine.stream_chat("And the blue one?")
    assert "".join(second.response_gen) == second.response
    assert len(llm_events.starts) == 1
    # The follow-up turn carries the first answer in its history and this turn's retrieved images.
    assert len(_images_sent(llm_events.starts[0])) == len(second.source_nodes) == TOP_K


def test_condense_plus_context_chat_engine_answers_follow_ups(index, llm, llm_events):
    engine = index.as_chat_engine(chat_mode="condense_plus_context", llm=llm, image_similarity_top_k=TOP_K)
    engine.chat("Which of these is the red circle pendant?")
    llm_events.starts.clear()
    llm_events.ends.clear()
    follow_up = engine.chat("And the blue one?")
    # Turn two condenses the question with a text-only call (decoded plainly), then answers over the images.
    assert isinstance(follow_up.response, str) and len(follow_up.source_nodes) == TOP_K
    image_counts = [end.response.raw["settings"]["n_images"] for end in llm_events.ends]
    assert image_counts[-1] == TOP_K


def test_reopened_index_retrieves_the_same_images(index, minilm, chroma_path, nodes):
    query = "black triangle pennant"
    before = [hit.node.node_id for hit in index.as_retriever(image_similarity_top_k=TOP_K).retrieve(query)]
    reopened = open_multimodal_index(embed_model=minilm, chroma=chroma_path)
    after = reopened.as_retriever(image_similarity_top_k=TOP_K).retrieve(query)
    assert [hit.node.node_id for hit in after] == before
    assert all(Path(hit.node.image_path).is_file() for hit in after)
    # Rebuilding into the same collections updates records instead of adding duplicates.
    changed = [
        nodes[0].model_copy(update={"metadata": {**nodes[0].metadata, "caption": "renamed"}}),
        *nodes[1:],
    ]
    build_multimodal_index(changed, embed_model=minilm, chroma=chroma_path)
    collection = chromadb.PersistentClient(path=str(chroma_path), settings=CHROMA_SETTINGS).get_collection(
        DEFAULT_IMAGE_COLLECTION
    )
    assert collection.count() == len(nodes)
    stored = json.loads(collection.get(ids=[nodes[0].node_id])["metadatas"][0]["_node_content"])
    assert stored["metadata"]["caption"] == "renamed"


def test_clip_embedder_indexes_pixels(tmp_path, llm, llm_events):
    from focus_integrations.store.testing import build_tiny_clip

    clip = FocusMultiModalEmbedding(f"clip:{build_tiny_clip(tmp_path / 'clip')}")
    assert clip.supports_images
    rebuilt = FocusMultiModalEmbedding.from_dict(
        clip.to_dict()
    )  # serialised settings rebuild the same embedder
    assert rebuilt.embedder_spec == clip.embedder_spec and rebuilt.dim == clip.dim == 16
    folder_nodes = catalog_nodes(embed_model=clip)
    assert all(node.embedding is None for node in folder_nodes)  # left for the index to embed from pixels
    index = build_multimodal_index(folder_nodes[:8], embed_model=clip, chroma=tmp_path / "chroma")
    stored = index.image_vector_store._collection.get(ids=[folder_nodes[0].node_id], include=["embeddings"])
    expected = clip.get_image_embedding(folder_nodes[0].image_path)
    assert list(stored["embeddings"][0]) == pytest.approx(expected, abs=1e-5)
    response = multimodal_query_engine(index, llm, image_similarity_top_k=TOP_K).query("a red circle")
    _assert_retrieved_images_reached_the_engine(llm_events, response.source_nodes)


def test_misuse_raises_documented_errors(nodes, minilm, llm, tmp_path):
    with pytest.raises(EmbedderCapabilityError):
        minilm.get_image_embedding(nodes[0].image_path)
    bare = ImageNode(image_path=nodes[0].image_path)
    with pytest.raises(InvalidOptionError, match="embeds text only"):
        build_multimodal_index([bare], embed_model=minilm, chroma=tmp_path / "a")
    inline = ImageNode(image="aGVsbG8=", embedding=[0.0] * minilm.dim)
    with pytest.raises(InvalidOptionError, match="inline base64"):
        build_multimodal_index([inline], embed_model=minilm, chroma=tmp_path / "b")
    with pytest.raises(InvalidOptionError, match="FocusMultiModalEmbedding"):
        build_multimodal_index(nodes, embed_model=None, chroma=tmp_path / "c")
    with pytest.raises(InvalidOptionError, match="not found"):
        catalog_nodes(tmp_path / "missing", embed_model=minilm)
    index = build_multimodal_index(nodes[:2], embed_model=minilm, chroma=tmp_path / "d")
    with pytest.raises(InvalidOptionError, match="image_similarity_top_k"):
        multimodal_query_engine(index, llm, image_similarity_top_k=0)
    with pytest.raises(InvalidOptionError, match="FocusMultiModalLLM"):
        multimodal_query_engine(index, object())
