"""LangChain integration: ``ChatFocus`` (a chat model that decodes with FOCUS on a local VLM) and retrieval
over the focus image store (``FocusImageRetriever``, ``images_to_message``, ``build_rag_chain``).

Imported lazily so ``import focus_integrations.langchain`` stays cheap until something is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from focus_integrations.langchain.chat_models import ChatFocus
    from focus_integrations.langchain.retriever import (
        FocusImageRetriever,
        build_rag_chain,
        hit_to_document,
        images_to_message,
    )

_LAZY = {
    "ChatFocus": "focus_integrations.langchain.chat_models",
    "FocusImageRetriever": "focus_integrations.langchain.retriever",
    "hit_to_document": "focus_integrations.langchain.retriever",
    "images_to_message": "focus_integrations.langchain.retriever",
    "build_rag_chain": "focus_integrations.langchain.retriever",
}

__all__ = ["ChatFocus", "FocusImageRetriever", "hit_to_document", "images_to_message", "build_rag_chain"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'focus_integrations.langchain' has no attribute {name!r}")
