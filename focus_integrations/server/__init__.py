"""OpenAI-compatible HTTP server for FOCUS decoding (``focus serve``), optionally on Ray Serve.

Install with ``pip install "focus-integrations[serve]"`` (``[ray]`` adds Ray Serve). The app is built by
:func:`create_app` around an engine (:mod:`focus_integrations.server.engines`); ``focus serve`` loads a model
and runs it with uvicorn. Docs: docs/serving.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_LAZY = {
    "create_app": "focus_integrations.server.app",
    "ServerConfig": "focus_integrations.server.config",
    "Limits": "focus_integrations.server.config",
    "ImageAccess": "focus_integrations.server.config",
    "SerialEngine": "focus_integrations.server.engines",
    "make_engine": "focus_integrations.server.engines",
    "ServeSettings": "focus_integrations.server.cli",
    "build_app": "focus_integrations.server.cli",
}

if TYPE_CHECKING:
    from focus_integrations.server.app import create_app
    from focus_integrations.server.cli import ServeSettings, build_app
    from focus_integrations.server.config import ImageAccess, Limits, ServerConfig
    from focus_integrations.server.engines import SerialEngine, make_engine


def __getattr__(name: str) -> Any:
    # FastAPI, uvicorn and prometheus-client load only when the server is built: `focus ask` stays light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'focus_integrations.server' has no attribute {name!r}")


__all__ = [
    "create_app",
    "ServerConfig",
    "Limits",
    "ImageAccess",
    "SerialEngine",
    "make_engine",
    "ServeSettings",
    "build_app",
]
