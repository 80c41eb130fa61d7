"""LangChain over the image store: the retriever, the image prompt, and the LCEL RAG chain (fake and ChatFocus)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402

from focus_integrations.errors import ImageLoadError, InvalidOptionError, NoImageError  # noqa: E402
from focus_integrations.langchain.retriever import (  # noqa: E402
    FocusImageRetriever,
    build_rag_chain,
    images_to_message,
)
from focus_integrations.store import bundled_catalog_path  # noqa: E402

SEEN: list[list[BaseMessage]] = []  # every message list a RecordingChat received


class RecordingChat(BaseChatModel):
    """A real BaseChatModel that answers with what it was shown: how many images, and the text it read."""

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        SEEN.append(messages)
        blocks = messages[-1].content_blocks
        images = [b for b in blocks if b["type"] == "image"]
        text = " ".join(b["text"] for b in blocks if b["type"] == "text")
        reply = f"{len(images)} images; {text}"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])


@pytest.fixture(scope="module")
def catalog_store(tmp_path_factory: pytest.TempPathFactory, minilm):
    from focus_integrations.store import ImageStore

    store = ImageStore(tmp_path_factory.mktemp("lc") / "store", embedder=minilm)
    store.add_folder(bundled_catalog_path())
    return store


def test_retriever_returns_documents_with_image_and_metadata(catalog_store) -> None:
    retriever = FocusImageRetriever(store=catalog_store, k=3)
    documents = retriever.invoke("blue pendant")
    assert len(documents) == 3
    top = documents[0]
    assert top.page_content == "blue circle pendant" and top.id == top.metadata["image_id"]
    assert top.metadata["colour"] == "blue" and top.metadata["category"] == "jewellery"
    assert Path(top.metadata["image_path"]).name == "blue-circle-pendant.png"
    assert documents[0].metadata["distance"] <= documents[1].metadata["distance"]
    # Per-call overrides of k and the filter.
    decor = retriever.invoke("blue", k=5, where={"category": "decor"})
    assert len(decor) == 5 and {d.metadata["category"] for d in decor} == {"decor"}
    with pytest.raises(InvalidOptionError):
        retriever.invoke("blue", k=0)


async def test_retriever_async(catalog_store) -> None:
    documents = await FocusImageRetriever(store=catalog_store, k=2).ainvoke("red notebook")
    assert documents[0].page_content == "red rectangle notebook"


def test_images_to_message_carries_the_image_bytes(catalog_store) -> None:
    documents = FocusImageRetriever(store=catalog_store, k=2).invoke("green triangle")
    message = images_to_message(documents, "Which is cheaper?", metadata_fields=["price"])
    blocks = message.content_blocks
    assert [b["type"] for b in blocks] == ["image", "image", "text"]  # images first, then the text
    for block, document in zip(blocks, documents):
        assert base64.b64decode(block["base64"]) == Path(document.metadata["image_path"]).read_bytes()
        assert block["mime_type"] == "image/png"
    text = blocks[-1]["text"]
    assert text.startswith(f"Image 1: {documents[0].page_content} (price: {documents[0].metadata['price']})")
    assert text.endswith("Which is cheaper?")
    bare = images_to_message(documents, "Q?", include_captions=False)
    assert bare.content_blocks[-1]["text"] == "Q?"
    custom = images_to_message(documents, "Q?", caption_line="#{index} {colour} for ${price}")
    assert custom.content_blocks[-1]["text"].startswith(f"#1 {documents[0].metadata['colour']} for $")


def test_images_to_message_errors(tmp_path: Path) -> None:
    with pytest.raises(NoImageError):
        images_to_message([], "anything?")
    with pytest.raises(ImageLoadError):
        images_to_message(
            [Document(page_content="x", metadata={"image_path": str(tmp_path / "gone.png")})], "q"
        )
    with pytest.raises(ImageLoadError):
        images_to_message([Document(page_content="x")], "q")
    document = Document(
        page_content="x", metadata={"image_path": str(bundled_catalog_path() / "catalog.json")}
    )
    with pytest.raises(InvalidOptionError):
        images_to_message([document], "q", caption_line="{missing_field}")


def test_rag_chain_with_a_recording_chat_model(catalog_store) -> None:
    SEEN.clear()
    chain = build_rag_chain(
        FocusImageRetriever(store=catalog_store, k=2),
        RecordingChat(),
        system="Answer about the products shown.",
    )
    answer = chain.invoke("yellow circle pendant")
    assert answer.startswith("2 images; Image 1: yellow circle pendant")
    assert answer.endswith("yellow circle pendant")
    (messages,) = SEEN
    assert isinstance(messages[0], SystemMessage) and isinstance(messages[1], HumanMessage)

    with_sources = build_rag_chain(
        FocusImageRetriever(store=catalog_store, k=3), RecordingChat(), return_sources=True
    ).invoke("teal notebook")
    assert with_sources["question"] == with_sources["search"] == "teal notebook"
    assert with_sources["documents"][0].page_content == "teal rectangle notebook"
    assert with_sources["answer"].startswith("3 images;")
    answers = chain.batch(["red", "blue"])
    assert [a.split("; ")[1].split("\n")[0].split()[:3] for a in answers] == [
        ["Image", "1:", "red"],
        ["Image", "1:", "blue"],
    ]
    assert len(SEEN) == 4


class _FocusMetadata(BaseCallbackHandler):
    def __init__(self) -> None:
        self.responses: list[dict[str, Any]] = []
        self.texts: list[str] = []

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.responses.append(response.generations[0][0].message.response_metadata)
        self.texts.append(response.generations[0][0].message.content)


def test_rag_chain_with_chat_focus(catalog_store, tiny_checkpoint: Callable[..., Path]) -> None:
    from focus_integrations.langchain import ChatFocus

    chat = ChatFocus(model=str(tiny_checkpoint("qwen2_5_vl")), max_new_tokens=4, seed=0)
    recorder = _FocusMetadata()
    chain = build_rag_chain(FocusImageRetriever(store=catalog_store, k=3), chat)
    answer = chain.invoke("which pendant is blue?", config={"callbacks": [recorder]})
    assert recorder.texts == [answer]  # the chain answers with what the model decoded, unchanged
    (metadata,) = recorder.responses
    # FOCUS decoded over the three retrieved images: N + 1 rows.
    assert metadata["focus"]["n_images"] == 3 and metadata["focus"]["n_rows"] == 4


def test_rag_chain_can_search_with_one_text_and_ask_another(catalog_store) -> None:
    chain = build_rag_chain(
        FocusImageRetriever(store=catalog_store, k=2),
        RecordingChat(),
        include_captions=False,
        return_sources=True,
    )
    result = chain.invoke({"search": "brown notebook", "question": "What color is the shape in image 1?"})
    assert result["documents"][0].page_content == "brown rectangle notebook"
    assert result["answer"] == "2 images; What color is the shape in image 1?"
    for bad in ({"search": "x"}, {"question": "q", "search": 3}, 42):
        with pytest.raises(InvalidOptionError):
            chain.invoke(bad)
