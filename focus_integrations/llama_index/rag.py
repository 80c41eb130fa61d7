"""Multimodal RAG over Chroma with LlamaIndex: images in, FOCUS answers out.

::

    embed = FocusMultiModalEmbedding("minilm")
    index = build_multimodal_index(catalog_nodes(folder, embed_model=embed), embed_model=embed, chroma=path)
    engine = multimodal_query_engine(index, FocusMultiModalLLM(model_path), image_similarity_top_k=3)
    print(engine.query("Which of these is the red circle?"))

The index is a stock :class:`MultiModalVectorStoreIndex` over two :class:`ChromaVectorStore` collections
(text nodes and image nodes). Image nodes carry ``image_path`` (never inline base64, which would end up in
Chroma's metadata) and an empty ``text``: their caption and metadata ride in ``metadata``, so the LLM sees them
next to the image, and an image is never retrieved twice (LlamaIndex also files any image node that has text
into the text store). The query engine is ``RetrieverQueryEngine.from_args(..., multimodal=True)``: every
retrieved image reaches ``FocusMultiModalLLM.chat`` as an ``ImageBlock``, and FOCUS decodes over all of them.
"""

from __future__ import annotations

import base64
import os
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import chromadb
from llama_index.core import StorageContext
from llama_index.core.base.llms.types import ImageBlock
from llama_index.core.indices.multi_modal import MultiModalVectorStoreIndex
from llama_index.core.indices.prompt_helper import ChatPromptHelper
from llama_index.core.prompts import RichPromptTemplate
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import get_response_synthesizer
from llama_index.core.schema import BaseNode, ImageNode
from llama_index.vector_stores.chroma import ChromaVectorStore

from focus_integrations.errors import ImageLoadError, InvalidOptionError
from focus_integrations.groups import check_group_by
from focus_integrations.images import load_image
from focus_integrations.llama_index.embeddings import FocusMultiModalEmbedding
from focus_integrations.llama_index.grouping import GroupImagesByMetadata
from focus_integrations.llama_index.llms import FocusMultiModalLLM
from focus_integrations.store.chroma_ef import FocusEmbeddingFunction
from focus_integrations.store.image_store import CHROMA_SETTINGS, IMAGE_EXTENSIONS, index_text
from focus_integrations.store.sidecars import (
    SidecarEntry,
    caption_from_filename,
    caption_from_text_file,
    read_folder_sidecars,
)

DEFAULT_TEXT_COLLECTION = "focus-llamaindex-text"
DEFAULT_IMAGE_COLLECTION = "focus-llamaindex-images"
CAPTION_KEY = "caption"
FILE_NAME_KEY = "file_name"

ChromaTarget = Any  # a chromadb client (ClientAPI), or a folder for a PersistentClient


#: The paper's protocol as a LlamaIndex QA prompt: one user turn holding the retrieved context (images, and
#: captions unless the nodes hide them) and then the question, with no system prompt or instructions around it.
#: Pass it as ``chat_content_qa_template=`` to :func:`multimodal_query_engine`, for models trained on bare
#: questions about images.
IMAGES_THEN_QUESTION_PROMPT = RichPromptTemplate(
    """{% chat role="user" %}
{% for message in context_messages %}{% for block in message.blocks %}{% if block.block_type == 'text' %}{{ block.text }}
{% elif block.block_type == 'image' %}{{ block.inline_url() | image }}{% endif %}{% endfor %}{% endfor %}{{ query_str }}
{% endchat %}"""
)


def default_catalog_dir() -> Path:
    """The small image catalog bundled with the package (``focus_integrations/assets/catalog``)."""
    return Path(str(resources.files("focus_integrations") / "assets" / "catalog"))


def catalog_nodes(
    folder: str | os.PathLike[str] | None = None,
    *,
    embed_model: FocusMultiModalEmbedding | None = None,
    recursive: bool = True,
    skip_unreadable: bool = True,
    include_captions: bool = True,
) -> list[ImageNode]:
    """One ``ImageNode`` per image file under ``folder`` (default: the bundled catalog).

    Captions and metadata come from the same sidecars the image store reads (``catalog.json``,
    ``metadata.jsonl``, ``<image>.txt``, else the file name). Node ids are the sidecar ``id`` or the path
    relative to ``folder``, so rebuilding an index upserts instead of duplicating. With a text-only
    ``embed_model`` (MiniLM) each node gets the embedding of its caption and metadata text now, because
    LlamaIndex would otherwise ask the embedding for pixels; with CLIP/SigLIP the index embeds the pixels.

    ``include_captions=False`` hides caption and catalog fields from the LLM (they still drive retrieval), so
    the model must answer from the pixels: what FOCUS is about, and what a model trained on bare questions
    (such as the bundled default model) expects.

    Every image is decoded once here: unreadable ones (truncated, empty, not an image) are skipped with a
    warning naming them, or raise :class:`ImageLoadError` with ``skip_unreadable=False``, so that a broken
    file fails now rather than in the middle of a query.
    """
    root = Path(folder) if folder is not None else default_catalog_dir()
    if not root.is_dir():
        raise InvalidOptionError(f"image folder not found: {root}")
    pattern = root.rglob("*") if recursive else root.glob("*")
    files = sorted(
        p
        for p in pattern
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    sidecars: dict[Path, dict[str, Any]] = {}
    nodes: list[ImageNode] = []
    texts: list[str] = []
    skipped: list[str] = []
    for file in files:
        try:
            load_image(file)
        except ImageLoadError as err:
            if not skip_unreadable:
                raise
            skipped.append(f"{file.relative_to(root).as_posix()} ({err})")
            continue
        entry = _sidecar_entry(file, root, sidecars)
        caption = (
            (entry.caption if entry else None) or caption_from_text_file(file) or caption_from_filename(file)
        )
        user_metadata = _flat_metadata(entry.metadata if entry else {})
        metadata = {CAPTION_KEY: caption, **user_metadata, FILE_NAME_KEY: file.relative_to(root).as_posix()}
        node = ImageNode(
            id_=(entry.id if entry and entry.id else file.relative_to(root).as_posix()),
            text="",
            image_path=str(file.resolve()),
            metadata=metadata,
            # The model sees caption and metadata next to the pixels (unless hidden); the file name is bookkeeping.
            excluded_llm_metadata_keys=list(metadata) if not include_captions else [FILE_NAME_KEY],
            excluded_embed_metadata_keys=[FILE_NAME_KEY],
        )
        nodes.append(node)
        texts.append(index_text(caption, user_metadata))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image(s): {'; '.join(skipped)}", stacklevel=2)
    if embed_model is not None and not embed_model.supports_images and nodes:
        for node, vector in zip(nodes, embed_model.get_text_embedding_batch(texts)):
            node.embedding = vector
    return nodes


def build_multimodal_index(
    nodes: Sequence[BaseNode],
    *,
    embed_model: FocusMultiModalEmbedding,
    chroma: ChromaTarget = None,
    text_collection: str = DEFAULT_TEXT_COLLECTION,
    image_collection: str = DEFAULT_IMAGE_COLLECTION,
    show_progress: bool = False,
) -> MultiModalVectorStoreIndex:
    """Embed ``nodes`` (``ImageNode``s and ``TextNode``s) into two Chroma collections and return the index.

    ``chroma``: a chromadb client, a folder (persistent, in-process), or None for an in-memory client. Adding
    nodes whose ids are already stored updates them.
    """
    _check_embed_model(embed_model)
    for node in nodes:
        if isinstance(node, ImageNode) and node.image and not node.image_path:
            raise InvalidOptionError(
                f"image node {node.node_id} holds inline base64: save the image and set image_path "
                "(Chroma would store the whole image in the record's metadata)"
            )
        if isinstance(node, ImageNode) and node.embedding is None and not embed_model.supports_images:
            raise InvalidOptionError(
                f"image node {node.node_id} has no embedding and {embed_model.model_name!r} embeds text only: "
                "build the nodes with catalog_nodes(..., embed_model=...) or use a clip:/siglip: embedder"
            )
    text_collection_, image_collection_ = _collections(embed_model, chroma, text_collection, image_collection)
    # ChromaVectorStore.add() skips ids that exist; drop them first so a rebuild updates changed records.
    ids = [node.node_id for node in nodes]
    for collection in (text_collection_, image_collection_):
        existing = collection.get(ids=ids, include=[])["ids"] if ids else []
        if existing:
            collection.delete(ids=existing)
    storage_context = StorageContext.from_defaults(
        vector_store=ChromaVectorStore(chroma_collection=text_collection_),
        image_store=ChromaVectorStore(chroma_collection=image_collection_),
    )
    return MultiModalVectorStoreIndex(
        nodes=list(nodes),
        storage_context=storage_context,
        embed_model=embed_model,
        image_embed_model=embed_model,
        show_progress=show_progress,
    )


def open_multimodal_index(
    *,
    embed_model: FocusMultiModalEmbedding,
    chroma: ChromaTarget,
    text_collection: str = DEFAULT_TEXT_COLLECTION,
    image_collection: str = DEFAULT_IMAGE_COLLECTION,
) -> MultiModalVectorStoreIndex:
    """Reopen an index that :func:`build_multimodal_index` persisted (same embedder, same collections)."""
    _check_embed_model(embed_model)
    text_collection_, image_collection_ = _collections(embed_model, chroma, text_collection, image_collection)
    return MultiModalVectorStoreIndex.from_vector_store(
        vector_store=ChromaVectorStore(chroma_collection=text_collection_),
        embed_model=embed_model,
        image_vector_store=ChromaVectorStore(chroma_collection=image_collection_),
        image_embed_model=embed_model,
        # Skip querying a collection that holds nothing (catalogs of images only have no text nodes).
        is_text_vector_store_empty=text_collection_.count() == 0,
        is_image_vector_store_empty=image_collection_.count() == 0,
    )


def multimodal_query_engine(
    index: MultiModalVectorStoreIndex,
    llm: FocusMultiModalLLM,
    *,
    similarity_top_k: int = 2,
    image_similarity_top_k: int = 3,
    streaming: bool = False,
    images_in_one_call: bool = True,
    group_by: str | None = "auto",
    **kwargs: Any,
) -> RetrieverQueryEngine:
    """``RetrieverQueryEngine.from_args(retriever, llm=llm, multimodal=True, streaming=...)`` over ``index``.

    FOCUS contrasts the images of one decode against each other, so all retrieved images should reach the
    model in one call. LlamaIndex's response synthesizers budget every image at a fixed OpenAI-sized estimate
    (2125 tokens), whatever the model really spends: with an 8k context, a fourth image would already be split
    off into a second "refine" call. ``images_in_one_call=True`` (the default) gives the synthesizer a prompt
    budget widened by that estimate for each of the ``image_similarity_top_k`` images, and counts text with
    the model's own tokenizer; the engine still refuses a prompt that truly overflows the context
    (``ContextLengthError``). ``False`` keeps LlamaIndex's own budget.

    ``group_by``: retrieved images that share a product or document id form one FOCUS group (``"auto"``:
    ``product_id``, ``document_id``, ``doc_id`` or ``ref_doc_id``, whichever two retrieved images share; a
    field name; ``None``: every image its own group); see :mod:`focus_integrations.llama_index.grouping`.

    ``kwargs`` go to ``from_args`` / ``get_response_synthesizer`` (``response_mode``, ``node_postprocessors``,
    templates, ``response_synthesizer``, ...).
    """
    if not isinstance(llm, FocusMultiModalLLM):
        raise InvalidOptionError(f"llm must be a FocusMultiModalLLM, got {type(llm).__name__}")
    for name, value in (
        ("similarity_top_k", similarity_top_k),
        ("image_similarity_top_k", image_similarity_top_k),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}")
    retriever = index.as_retriever(
        similarity_top_k=similarity_top_k, image_similarity_top_k=image_similarity_top_k
    )
    if images_in_one_call and "response_synthesizer" not in kwargs:
        synthesizer_args = {key: kwargs.pop(key) for key in list(kwargs) if key in _SYNTHESIZER_ARGS}
        kwargs["response_synthesizer"] = get_response_synthesizer(
            llm=llm,
            chat_prompt_helper=_one_call_prompt_helper(llm, image_similarity_top_k),
            streaming=streaming,
            multimodal=True,
            **synthesizer_args,
        )
    if group_by is not None:
        check_group_by(group_by)
        kwargs["node_postprocessors"] = [
            *(kwargs.get("node_postprocessors") or []),
            GroupImagesByMetadata(group_by=group_by),
        ]
    return RetrieverQueryEngine.from_args(retriever, llm=llm, multimodal=True, streaming=streaming, **kwargs)


_SYNTHESIZER_ARGS = frozenset(
    {
        "response_mode",
        "text_qa_template",
        "refine_template",
        "summary_template",
        "simple_template",
        "chat_content_qa_template",
        "chat_content_refine_template",
        "output_cls",
        "use_async",
        "verbose",
        "callback_manager",
    }
)


def _one_call_prompt_helper(llm: FocusMultiModalLLM, n_images: int) -> ChatPromptHelper:
    meta = llm.metadata
    # LlamaIndex's own per-image estimate (read, not copied, so a change upstream is followed).
    per_image = ImageBlock(image=_ONE_PIXEL_PNG).estimate_tokens()
    tokenizer = llm.decoder.tokenizer
    return ChatPromptHelper(
        context_window=meta.context_window + per_image * n_images,
        num_output=meta.num_output,
        tokenizer=lambda text: tokenizer(text, add_special_tokens=False)["input_ids"],
    )


# A valid 1x1 PNG: ImageBlock.estimate_tokens() resolves the image before returning its flat estimate.
_ONE_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


# ----- internals ----------------------------------------------------------------------------------------------


def _check_embed_model(embed_model: Any) -> None:
    # LlamaIndex would otherwise fall back to Settings.embed_model: OpenAI, which needs the network and a key.
    if not isinstance(embed_model, FocusMultiModalEmbedding):
        raise InvalidOptionError(
            f"embed_model must be a FocusMultiModalEmbedding, got {type(embed_model).__name__}"
        )


def _client(chroma: ChromaTarget) -> Any:
    if chroma is None:
        return chromadb.EphemeralClient(settings=CHROMA_SETTINGS)
    if isinstance(chroma, (str, os.PathLike)):
        path = Path(chroma)
        if path.exists() and not path.is_dir():
            raise InvalidOptionError(f"chroma path {path} exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=CHROMA_SETTINGS)
    if not hasattr(chroma, "get_or_create_collection"):
        raise InvalidOptionError(f"chroma must be a chromadb client or a folder, got {type(chroma).__name__}")
    return chroma


def _collections(
    embed_model: FocusMultiModalEmbedding, chroma: ChromaTarget, text_name: str, image_name: str
) -> tuple[Any, Any]:
    """The text and image collections (created if missing)."""
    if text_name == image_name:
        raise InvalidOptionError("text_collection and image_collection must differ")
    client = _client(chroma)
    # Our registered embedding function, never Chroma's default (it downloads an ONNX model when called). The
    # vectors always come from LlamaIndex, but a reopened collection rebuilds this function from its config.
    function = FocusEmbeddingFunction(embed_model.embedder)
    collections = []
    for name in (text_name, image_name):
        try:
            collections.append(client.get_or_create_collection(name, embedding_function=function))
        except ValueError as err:  # bad name, or a collection built with another embedding function
            raise InvalidOptionError(f"cannot open Chroma collection {name!r}: {err}") from None
    return collections[0], collections[1]


def _sidecar_entry(file: Path, root: Path, cache: dict[Path, dict[str, Any]]) -> SidecarEntry | None:
    """The file's sidecar entry: its own folder's catalog first, then each parent's up to ``root`` (where the
    entry names it by its path relative to that folder), as the image store resolves them."""
    folder = file.parent
    while True:
        if folder not in cache:
            cache[folder] = read_folder_sidecars(folder)
        entry = cache[folder].get(file.relative_to(folder).as_posix())
        if entry is not None or folder == root or root not in folder.parents:
            return entry
        folder = folder.parent


def _flat_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Chroma metadata holds scalars only: lists become comma-separated text, None is dropped, else str()."""
    flat: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, (str, int, float, bool)):
            flat[key] = value
        elif isinstance(value, (list, tuple)):
            flat[key] = ", ".join(str(item) for item in value)
        else:
            flat[key] = str(value)
    return flat


__all__ = [
    "DEFAULT_TEXT_COLLECTION",
    "DEFAULT_IMAGE_COLLECTION",
    "IMAGES_THEN_QUESTION_PROMPT",
    "default_catalog_dir",
    "catalog_nodes",
    "build_multimodal_index",
    "open_multimodal_index",
    "multimodal_query_engine",
]
