"""The reading half of :class:`~focus_integrations.store.image_store.ImageStore` (mixed into it): ``count``,
``get`` by id or metadata filter, ``query`` by text or example image (a text-only embedder matches an image
through the stored embedding of the same bytes, or a caption), and the ``where`` filter check."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from focus_integrations.errors import InvalidOptionError
from focus_integrations.images import load_image
from focus_integrations.store.errors import EmbedderCapabilityError
from focus_integrations.store.records import _SHA, Captioner, ImageHit, ImageSource, _column, _hit, _reason


class ReadingMixin:
    """Reads of an :class:`~focus_integrations.store.image_store.ImageStore` (set up by its ``__init__``)."""

    embedder: Any
    _collection: Any

    def count(self) -> int:
        return int(self._collection.count())

    def __len__(self) -> int:
        return self.count()

    def get(
        self,
        ids: Sequence[str] | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[ImageHit]:
        """Records by id (in the order given; unknown ids are left out) and/or metadata filter."""
        if isinstance(ids, str):
            ids = [ids]
        found = self._filtered(
            self._collection.get,
            where,
            ids=list(ids) if ids is not None else None,
            limit=limit,
            include=["metadatas", "documents", "uris"],
        )
        hits = [
            _hit(i, u, d, m, None)
            for i, u, d, m in zip(
                found["ids"],
                *(_column(found, key, len(found["ids"])) for key in ("uris", "documents", "metadatas")),
            )
        ]
        if ids is not None:
            order = {record_id: n for n, record_id in enumerate(ids)}
            hits.sort(key=lambda hit: order.get(hit.id, len(order)))
        return hits

    def query(
        self,
        text: str | None = None,
        *,
        image: ImageSource | None = None,
        k: int = 4,
        where: Mapping[str, Any] | None = None,
        captioner: Captioner | None = None,
    ) -> list[ImageHit]:
        """The ``k`` nearest images to a text or an example image, optionally filtered by metadata.

        ``where`` is a Chroma filter over the user's metadata fields (``{"category": "jewellery"}``,
        ``{"price": {"$lt": 20}}``, ``{"$and": [...]}``). With a text-only embedder an example image is matched
        through the stored embedding of the same image (by content hash) if the store holds it, else through
        its caption from ``captioner``; otherwise :class:`EmbedderCapabilityError`.
        """
        if (text is None) == (image is None):
            raise InvalidOptionError("query() needs exactly one of text= or image=")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidOptionError(f"k must be a positive integer, got {k!r}")
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise InvalidOptionError("query text must be a non-empty string")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate (a mis-decoded argument): the tokenizer would crash
                raise InvalidOptionError(f"query text is not valid Unicode: {text[:80]!r}") from None
            vector = self.embedder.embed_texts([text])[0]
        else:
            vector = self._image_query_vector(image, captioner)
        total = self.count()
        if total == 0:
            return []
        found = self._filtered(
            self._collection.query,
            where,
            query_embeddings=[vector],
            n_results=min(k, total),
            include=["metadatas", "documents", "uris", "distances"],
        )
        return [
            _hit(i, u, d, m, float(dist))
            for i, u, d, m, dist in zip(
                found["ids"][0],
                *(
                    _column(found, key, len(found["ids"][0]), query=True)
                    for key in ("uris", "documents", "metadatas")
                ),
                found["distances"][0],
            )
        ]

    def _filtered(self, call: Callable[..., Any], where: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        """``call(where=..., **kwargs)``, with a bad metadata filter reported as :class:`InvalidOptionError`."""
        if where is None or (isinstance(where, Mapping) and not where):
            return call(where=None, **kwargs)
        if not isinstance(where, Mapping):
            raise InvalidOptionError(
                f"where must be a dict (a Chroma metadata filter), got {type(where).__name__}"
            )
        from chromadb.errors import InvalidArgumentError

        try:
            return call(where=dict(where), **kwargs)
        except (ValueError, TypeError, InvalidArgumentError) as err:
            raise InvalidOptionError(f"invalid where filter {dict(where)!r}: {_reason(err)}") from None

    def _image_query_vector(self, image: ImageSource, captioner: Captioner | None) -> list[float]:
        pil = load_image(image)
        if self.embedder.supports_images:
            return self.embedder.embed_images([pil])[0]
        data = (
            Path(image).read_bytes()
            if isinstance(image, (str, os.PathLike)) and Path(image).is_file()
            else None
        )
        if data is not None:
            same = self._collection.get(
                where={_SHA: hashlib.sha256(data).hexdigest()}, limit=1, include=["embeddings"]
            )
            if same["ids"]:
                return [float(x) for x in same["embeddings"][0]]
        if captioner is not None:
            return self.embedder.embed_texts([str(captioner(pil))])[0]
        raise EmbedderCapabilityError(
            f"this store's embedder {self.embedder.name!r} is text-only and the example image is not in the "
            "store: pass captioner= to describe it, or build the store with a clip:/siglip: embedder"
        )
