"""An image store on Chroma: ingest folders or image lists with captions and metadata, query by text or image.

One record per image: its id, its embedding, the caption as the Chroma *document*, the image file's absolute
path as the record *URI* (images are never inlined into metadata), the user's metadata fields, and bookkeeping
fields prefixed ``focus_`` (content hash, size). The collection's metadata records which embedder built it; a
store opened with another embedder raises :class:`EmbedderMismatchError`.

The pieces: :mod:`.records` (what a record is), :mod:`.connection` (Chroma clients), :mod:`.candidates` and
:mod:`.ingest` (folders and image lists in, one item at a time; crash-safe batches), :mod:`.reading` (count,
get, query), this module (opening, creating, updating, deleting).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from focus_integrations.errors import InvalidOptionError, ModelNotFoundError
from focus_integrations.images import MAX_IMAGE_PIXELS
from focus_integrations.store.candidates import (
    DEFAULT_MAX_FILE_BYTES,
    IMAGE_EXTENSIONS,
    _encode_in_memory,
    _local_path,
)
from focus_integrations.store.chroma_ef import FocusEmbeddingFunction
from focus_integrations.store.connection import (
    CHROMA_SETTINGS,
    DEFAULT_SERVER_TIMEOUT_S,
    _http_client,
    _persistent_client,
    _ServerGuard,
    check_timeout,
    chroma_settings,
    default_store_path,
    server_url,
    store_open_lock,
    validate_collection_name,
)
from focus_integrations.store.embedders import DEFAULT_EMBEDDER_SPEC, Embedder, load_embedder
from focus_integrations.store.errors import (
    EmbedderMismatchError,
    RecordNotFoundError,
    StoreNotFoundError,
)
from focus_integrations.store.ingest import IngestMixin
from focus_integrations.store.reading import ReadingMixin
from focus_integrations.store.records import (
    _CAPTION_BY,
    _FORMAT,
    _HEIGHT,
    _SHA,
    _SOURCE_SHA,
    _WIDTH,
    RESERVED_PREFIX,
    ImageHit,
    ImageItem,
    ImageSource,
    IngestReport,
    _check_positive_int,
    _sanitize_metadata,
    _source_fingerprint,
    index_text,
)

DEFAULT_COLLECTION = "focus-images"
STORE_FORMAT = 1
_INDEX_HINT = (
    " (index images first with `focus index DIR` / ImageStore.add_folder, or open the store you indexed:"
    " --store PATH, --chroma-url URL, $FOCUS_STORE_PATH)"
)


class ImageStore(ReadingMixin, IngestMixin):
    """A Chroma collection of images.

    Exactly one of ``path`` (embedded ``PersistentClient``, the default: :func:`default_store_path`),
    ``url`` (``http://host:port`` of a ``chroma run`` server, via ``HttpClient``) or ``client`` (any Chroma
    client you made) chooses where it lives.

    ``embedder`` is an :class:`Embedder`, a spec string (``"minilm"``, ``"clip:PATH"``, ...) or None: a new
    store then uses ``"minilm"`` and an existing one the embedder recorded in it.

    ``media_dir`` is where in-memory images passed to :meth:`add_images` are saved as files (default
    ``<path>/media`` for an embedded store; required for server stores that get in-memory images).

    ``timeout`` is the deadline, in seconds, of each call to a Chroma server (``url=``, or a ``client=`` that is
    an ``HttpClient``); a server that does not answer in time raises :class:`StoreTimeoutError`. None: no
    deadline. Embedded stores make no network calls and ignore it.

    ``create=False`` opens an existing store only (what a read-only caller such as ``focus query`` wants): a
    missing embedded store (no Chroma database under ``path``) or a missing collection raises
    :class:`StoreNotFoundError` and nothing is created.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        client: Any = None,
        url: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        embedder: Embedder | str | None = None,
        media_dir: str | os.PathLike[str] | None = None,
        max_pixels: int = MAX_IMAGE_PIXELS,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        batch_size: int = 32,
        timeout: float | None = DEFAULT_SERVER_TIMEOUT_S,
        create: bool = True,
    ) -> None:
        if sum(x is not None for x in (path, client, url)) > 1:
            raise InvalidOptionError("give at most one of path=, client=, url=")
        self.collection_name = validate_collection_name(collection)
        _check_positive_int("max_pixels", max_pixels)
        _check_positive_int("max_file_bytes", max_file_bytes)
        _check_positive_int("batch_size", batch_size)
        self.max_pixels, self.max_file_bytes, self.batch_size = max_pixels, max_file_bytes, batch_size
        self.timeout = check_timeout(timeout)
        self.path: Path | None = None
        self.url: str | None = None
        if client is None and url is None:
            self.path = Path(path).expanduser() if path is not None else default_store_path()
            if not create and not (self.path / "chroma.sqlite3").is_file():  # Chroma's database file
                raise StoreNotFoundError(f"no image store at {self.path}{_INDEX_HINT}")
        # Two processes creating the same new embedded store race inside Chroma (its schema migration, the
        # collection's creation): one file lock per store folder serialises opening; ingest runs unlocked.
        with store_open_lock(self.path) if self.path is not None else contextlib.nullcontext():
            self._connect(client, url, batch_size, media_dir, embedder, create)

    def _connect(
        self,
        client: Any,
        url: str | None,
        batch_size: int,
        media_dir: Any,
        embedder: Embedder | str | None,
        create: bool = True,
    ) -> None:
        if client is not None:
            self.client = client
        elif url is not None:
            self.url = url
            self.client = _http_client(url, self.timeout)
        else:
            assert self.path is not None
            self.client = _persistent_client(self.path)
        # Over HTTP every call has a deadline, and a server that stalls or goes away mid-session surfaces as
        # StoreTimeoutError / StoreConnectionError, not as an httpx error or a hang.
        self._server_url = url if url is not None else server_url(self.client)
        self._client = self._guard(self.client)
        try:
            max_batch = int(self._client.get_max_batch_size())
        except (AttributeError, NotImplementedError):
            max_batch = 1000  # a client without the call: a size every Chroma accepts
        if batch_size > max_batch:
            raise InvalidOptionError(f"batch_size={batch_size} exceeds this Chroma's maximum of {max_batch}")
        self._max_batch = max_batch
        if media_dir is not None:
            self.media_dir: Path | None = Path(media_dir).expanduser()
        else:
            self.media_dir = self.path / "media" if self.path is not None else None
        self.embedder, self._raw_collection = self._open_collection(embedder, create=create)
        self._collection = self._guard(self._raw_collection)

    def _guard(self, target: Any) -> Any:
        if self._server_url is None:
            return target
        return _ServerGuard(target, self._server_url, self.timeout)

    # ----------------------------------------------------------------------------------------------- opening

    def _open_collection(
        self, embedder: Embedder | str | None, *, create: bool = True
    ) -> tuple[Embedder, Any]:
        existing = self._existing_collection()
        if existing is None and not create:
            where = self.url or (str(self.path) if self.path is not None else "the given client")
            raise StoreNotFoundError(
                f"no collection {self.collection_name!r} in the store at {where}{_INDEX_HINT}"
            )
        if existing is None:
            resolved = load_embedder(embedder if embedder is not None else DEFAULT_EMBEDDER_SPEC)
            return resolved, self._create_collection(resolved)
        recorded = dict(existing.metadata or {})
        recorded_name = recorded.get("focus_embedder")
        if recorded_name is None:
            raise EmbedderMismatchError(
                f"collection {self.collection_name!r} exists but was not made by focus_integrations "
                "(no embedder recorded): use another collection name"
            )
        if embedder is None:
            spec = str(recorded.get("focus_embedder_spec", DEFAULT_EMBEDDER_SPEC))
            try:
                resolved = load_embedder(spec)
            except ModelNotFoundError as err:
                raise ModelNotFoundError(
                    f"collection {self.collection_name!r} was built with embedder {recorded_name!r} "
                    f"(spec {spec!r}), which cannot be loaded now: pass embedder='KIND:PATH' naming where that "
                    f"model is. {err}"
                ) from None
        else:
            resolved = load_embedder(embedder)
        recorded_dim = recorded.get("focus_embedder_dim")
        if resolved.name != recorded_name or (recorded_dim is not None and int(recorded_dim) != resolved.dim):
            raise EmbedderMismatchError(
                f"store collection {self.collection_name!r} was built with embedder {recorded_name!r} "
                f"(dim {recorded_dim}), not {resolved.name!r} (dim {resolved.dim}): open it with "
                f"embedder={recorded.get('focus_embedder_spec')!r}, or index into a new collection"
            )
        return resolved, self._get_collection(FocusEmbeddingFunction(resolved))

    def _existing_collection(self) -> Any | None:
        from chromadb.errors import NotFoundError

        try:
            return self._get_collection(None)
        except NotFoundError:
            return None
        except ValueError as err:
            # Chroma rebuilds the persisted embedding function first: an unknown one means a foreign collection.
            if "not found" in str(err).lower() or "embedding function" in str(err).lower():
                raise EmbedderMismatchError(
                    f"collection {self.collection_name!r} exists with an embedding function this library "
                    f"does not know: {err}"
                ) from None
            raise

    def _get_collection(self, ef: FocusEmbeddingFunction | None) -> Any:
        if ef is None:
            return self._client.get_collection(self.collection_name)
        return self._client.get_collection(self.collection_name, embedding_function=ef)

    def _create_collection(self, embedder: Embedder) -> Any:
        from chromadb.errors import InternalError, UniqueConstraintError

        metadata = {
            "focus_store_format": STORE_FORMAT,
            "focus_embedder": embedder.name,
            "focus_embedder_spec": embedder.spec,
            "focus_embedder_dim": embedder.dim,
            "focus_embeds": "image" if embedder.supports_images else "text",
        }
        try:
            return self._client.create_collection(
                self.collection_name,
                embedding_function=FocusEmbeddingFunction(embedder),
                metadata=metadata,
                configuration={"hnsw": {"space": "cosine"}},
            )
        except (UniqueConstraintError, InternalError) as err:
            # Another process created it between our look-up and now (Chroma 1.x reports that as an
            # InternalError "Collection [name] already exists"): open it the normal way.
            if isinstance(err, InternalError) and "already exists" not in str(err):
                raise
            return self._open_collection(embedder)[1]

    @property
    def collection(self) -> Any:
        """The underlying ``chromadb`` collection (for anything this class does not wrap)."""
        return self._raw_collection

    # ------------------------------------------------------------------------------------- update and delete

    def update(
        self,
        record_id: str,
        *,
        caption: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        image: ImageSource | None = None,
        replace_metadata: bool = False,
    ) -> ImageHit:
        """Change one record's caption, metadata (merged; a ``None`` value removes a key) and/or image.

        The embedding is recomputed when what it was made from changed. Raises :class:`RecordNotFoundError`.
        """
        current = self.get([record_id])
        if not current:
            raise RecordNotFoundError(f"no record with id {record_id!r} in {self.collection_name!r}")
        hit = current[0]
        new_caption = hit.caption if caption is None else str(caption)
        user_meta = {} if replace_metadata else dict(hit.metadata)
        for key, value in (metadata or {}).items():
            if value is None:
                user_meta.pop(key, None)
            else:
                user_meta[key] = value
        user_meta = _sanitize_metadata(user_meta, record_id)
        stored = self._collection.get(ids=[record_id], include=["metadatas"])["metadatas"][0] or {}
        bookkeeping = {k: v for k, v in stored.items() if k.startswith(RESERVED_PREFIX)}
        uri = hit.uri
        if image is not None:
            file = _local_path(image)
            data = self._read_file(file) if file is not None else _encode_in_memory(image)
            sha = hashlib.sha256(data).hexdigest()
            pil, image_format = self._decode(data, record_id)
            if file is None:
                if self.media_dir is None:
                    raise InvalidOptionError("in-memory images need media_dir=")
                file = self._save_media(data, sha, image_format)
            uri = str(file)
            bookkeeping.update({_SHA: sha, _WIDTH: pil.width, _HEIGHT: pil.height, _FORMAT: image_format})
        else:
            pil = None
        if caption is not None:
            bookkeeping[_CAPTION_BY] = "user"
        # A changed source fingerprint makes the next folder ingest re-apply the sidecar's version, on purpose.
        bookkeeping[_SOURCE_SHA] = _source_fingerprint(new_caption, user_meta)
        if self.embedder.supports_images:
            needs_embedding = pil is not None
            if needs_embedding:
                embedding = self.embedder.embed_images([pil])[0]
        else:
            needs_embedding = index_text(new_caption, user_meta) != index_text(hit.caption, hit.metadata)
            if needs_embedding:
                embedding = self.embedder.embed_texts([index_text(new_caption, user_meta)])[0]
        new_metadata: dict[str, Any] = {**user_meta, **bookkeeping}
        # Chroma's upsert merges metadata: a key is removed by sending it with None.
        new_metadata.update({key: None for key in stored if key not in new_metadata})
        record = {"ids": [record_id], "documents": [new_caption], "uris": [uri], "metadatas": [new_metadata]}
        if needs_embedding:
            record["embeddings"] = [embedding]
        else:
            stored_embedding = self._collection.get(ids=[record_id], include=["embeddings"])["embeddings"][0]
            record["embeddings"] = [list(map(float, stored_embedding))]
        self._collection.upsert(**record)
        return self.get([record_id])[0]

    def delete(
        self, ids: str | Sequence[str] | None = None, *, where: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Delete records by id and/or metadata filter; returns the ids actually deleted.

        The image files stay where they are (the store does not own a folder you indexed).
        """
        if ids is None and not where:
            raise InvalidOptionError(
                "delete() needs ids= or a non-empty where= (refusing to delete everything)"
            )
        id_list = [ids] if isinstance(ids, str) else (list(ids) if ids is not None else None)
        found = self._filtered(self._collection.get, where, ids=id_list, include=[])
        doomed = list(found["ids"])
        self._delete_ids(doomed)
        return doomed

    def _delete_ids(self, ids: Sequence[str]) -> None:
        # Chroma caps the records of one call (get_max_batch_size()); a large prune or delete goes in chunks.
        for start in range(0, len(ids), self._max_batch):
            self._collection.delete(ids=list(ids[start : start + self._max_batch]))

    def __repr__(self) -> str:
        where = self.url or (str(self.path) if self.path else type(self.client).__name__)
        return f"ImageStore({where!r}, collection={self.collection_name!r}, embedder={self.embedder.name!r})"


__all__ = [
    "CHROMA_SETTINGS",
    "DEFAULT_COLLECTION",
    "DEFAULT_MAX_FILE_BYTES",
    "IMAGE_EXTENSIONS",
    "RESERVED_PREFIX",
    "ImageHit",
    "ImageItem",
    "ImageStore",
    "IngestReport",
    "chroma_settings",
    "default_store_path",
    "index_text",
    "validate_collection_name",
]
