"""LangChain integration: ``ChatFocus``, a chat model that decodes with FOCUS on a local VLM.

Imported lazily so ``import focus_integrations.langchain`` stays cheap until the model is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from focus_integrations.langchain.chat_models import ChatFocus

__all__ = ["ChatFocus"]


def __getattr__(name: str) -> Any:
    if name == "ChatFocus":
        from focus_integrations.langchain.chat_models import ChatFocus

        return ChatFocus
    raise AttributeError(f"module 'focus_integrations.langchain' has no attribute {name!r}")
