"""A registered Chroma embedding function wrapping an :class:`~focus_integrations.store.embedders.Embedder`.

Chroma persists the name and config of a collection's embedding function and rebuilds it when the collection
is reopened. Without a registered function of our own it would fall back to its default, which downloads an
ONNX model on first use (and fails offline). Importing :mod:`focus_integrations.store` registers this class,
so any Chroma client in the process (ours, LlamaIndex's ``ChromaVectorStore``, plain ``chromadb``) gets the
right embedder back for a focus collection. The embedder is loaded lazily, on the first call.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from chromadb.api.types import Embeddable, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function
from PIL import Image

from focus_integrations.store.embedders import Embedder, load_embedder

EMBEDDING_FUNCTION_NAME = "focus_integrations"


@register_embedding_function
class FocusEmbeddingFunction(EmbeddingFunction[Embeddable]):
    """Chroma-facing adapter: strings go to ``embed_texts``, image arrays to ``embed_images``."""

    def __init__(self, embedder: Embedder | None = None, *, spec: str | None = None) -> None:
        if embedder is None and spec is None:
            raise ValueError("FocusEmbeddingFunction needs an embedder or an embedder spec")
        self._embedder = embedder
        self._spec = embedder.spec if embedder is not None else spec
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = load_embedder(self._spec)
            return self._embedder

    def __call__(self, input: Embeddable) -> Embeddings:
        items = list(input)
        if all(isinstance(item, str) for item in items):
            vectors = self.embedder.embed_texts(items)
        else:
            vectors = self.embedder.embed_images([_to_pil(item) for item in items])
        return [np.asarray(vector, dtype=np.float32) for vector in vectors]

    @staticmethod
    def name() -> str:
        return EMBEDDING_FUNCTION_NAME

    def get_config(self) -> dict[str, Any]:
        if self._embedder is not None:
            return self._embedder.config()
        return {"spec": self._spec}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> FocusEmbeddingFunction:
        spec = config.get("spec")
        if not isinstance(spec, str):
            raise ValueError(f"focus embedding function config has no 'spec': {config}")
        return FocusEmbeddingFunction(spec=spec)

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "l2", "ip"]

    def is_legacy(self) -> bool:
        return False


def _to_pil(item: Any) -> Image.Image:
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        array = item
        if array.dtype != np.uint8:
            array = np.clip(array * (255.0 if array.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return Image.fromarray(array).convert("RGB")
    raise TypeError(f"cannot embed a {type(item).__name__}: give strings or images")
