"""LlamaIndex integration: ``FocusMultiModalLLM`` (FOCUS decoding as a chat LLM), ``FocusMultiModalEmbedding``
(the project's embedders for ``MultiModalVectorStoreIndex``) and multimodal RAG over Chroma.

Needs the ``llama-index`` extra (``llama-index-core``; ``llama-index-vector-stores-chroma`` and ``chromadb``
for the RAG helpers). Names load lazily, so importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "FocusMultiModalLLM": "focus_integrations.llama_index.llms",
    "FocusMultiModalEmbedding": "focus_integrations.llama_index.embeddings",
    "chat_messages_to_engine": "focus_integrations.llama_index.conversion",
    "prompt_to_engine": "focus_integrations.llama_index.conversion",
    "GroupedImageBlock": "focus_integrations.llama_index.conversion",
    "GroupImagesByMetadata": "focus_integrations.llama_index.grouping",
    "catalog_nodes": "focus_integrations.llama_index.rag",
    "build_multimodal_index": "focus_integrations.llama_index.rag",
    "open_multimodal_index": "focus_integrations.llama_index.rag",
    "multimodal_query_engine": "focus_integrations.llama_index.rag",
}

if TYPE_CHECKING:
    from focus_integrations.llama_index.conversion import (
        GroupedImageBlock,
        chat_messages_to_engine,
        prompt_to_engine,
    )
    from focus_integrations.llama_index.embeddings import FocusMultiModalEmbedding
    from focus_integrations.llama_index.grouping import GroupImagesByMetadata
    from focus_integrations.llama_index.llms import FocusMultiModalLLM
    from focus_integrations.llama_index.rag import (
        build_multimodal_index,
        catalog_nodes,
        multimodal_query_engine,
        open_multimodal_index,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'focus_integrations.llama_index' has no attribute {name!r}")


__all__ = [
    "FocusMultiModalLLM",
    "FocusMultiModalEmbedding",
    "chat_messages_to_engine",
    "prompt_to_engine",
    "GroupedImageBlock",
    "GroupImagesByMetadata",
    "catalog_nodes",
    "build_multimodal_index",
    "open_multimodal_index",
    "multimodal_query_engine",
]
