"""``FocusMultiModalEmbedding``: the project's embedders (MiniLM, CLIP, SigLIP) as a LlamaIndex embedding.

``MultiModalVectorStoreIndex`` needs a :class:`MultiModalEmbedding` for its image store (its default is a CLIP
package that downloads weights). This wraps :func:`focus_integrations.store.embedders.load_embedder`:

* ``clip:PATH`` / ``siglip:PATH`` embed text and images into one space: image nodes are embedded from their
  pixels and text queries find them.
* ``minilm`` (the offline default) is text only. Image nodes must then carry a precomputed ``embedding`` of
  their caption (:func:`focus_integrations.llama_index.rag.catalog_nodes` does this); asked to embed pixels it
  raises :class:`~focus_integrations.store.errors.EmbedderCapabilityError` rather than guessing.
"""

from __future__ import annotations

import asyncio
from io import IOBase
from typing import Any

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import ImageType
from PIL import Image

from focus_integrations.images import load_image
from focus_integrations.store.embedders import Embedder, load_embedder
from focus_integrations.store.errors import EmbedderCapabilityError


class FocusMultiModalEmbedding(MultiModalEmbedding):
    """LlamaIndex embedding over an :class:`~focus_integrations.store.embedders.Embedder`.

    ``FocusMultiModalEmbedding("minilm")``, ``FocusMultiModalEmbedding("clip:/models/clip-vit-b32")``, or
    ``FocusMultiModalEmbedding(embedder)`` with an embedder you built. Vectors are L2-normalised.
    """

    embedder_spec: str = Field(description="How load_embedder rebuilds the embedder ('minilm', 'clip:PATH').")
    dim: int = Field(description="Embedding dimension.")
    modalities: list[str] = Field(description="What it embeds: ['text'] or ['image', 'text'].")

    _embedder: Embedder = PrivateAttr()

    def __init__(
        self, embedder: str | Embedder | None = None, *, device: str | None = None, **kwargs: Any
    ) -> None:
        # from_dict() passes the serialised fields back: rebuild from the spec, recompute the rest.
        spec = kwargs.pop("embedder_spec", None)
        kwargs.pop("dim", None)
        kwargs.pop("modalities", None)
        resolved = load_embedder(embedder if embedder is not None else spec, device=device)
        kwargs.setdefault("model_name", resolved.name)
        super().__init__(
            embedder_spec=resolved.spec, dim=resolved.dim, modalities=sorted(resolved.modalities), **kwargs
        )
        self._embedder = resolved

    @classmethod
    def class_name(cls) -> str:
        return "FocusMultiModalEmbedding"

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def supports_images(self) -> bool:
        """True when images are embedded from their pixels (CLIP / SigLIP), False for text-only MiniLM."""
        return self._embedder.supports_images

    # ----- text ---------------------------------------------------------------------------------------------

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embedder.embed_texts([query])[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embedder.embed_texts([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embedder.embed_texts(texts)

    # The embedders run torch on the CPU/GPU: a worker thread keeps the event loop free.
    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    # ----- images -------------------------------------------------------------------------------------------

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_image_embeddings([img_file_path])[0]

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        if not self._embedder.supports_images:
            raise EmbedderCapabilityError(
                f"embedder {self._embedder.name!r} embeds text only: give image nodes a precomputed caption "
                "embedding (see focus_integrations.llama_index.rag.catalog_nodes) or use a clip:/siglip: embedder"
            )
        return self._embedder.embed_images([_to_pil(item) for item in img_file_paths])

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return await asyncio.to_thread(self._get_image_embedding, img_file_path)

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_image_embeddings, img_file_paths)


def _to_pil(item: Any) -> Image.Image:
    # LlamaIndex hands over a path (ImageNode.image_path) or a BytesIO (inline images); PIL images pass through.
    if isinstance(item, IOBase):
        item.seek(0)
        return load_image(item.read())
    return load_image(item)
