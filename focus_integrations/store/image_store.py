"""An image store on Chroma: ingest folders or image lists with captions and metadata, query by text or image.

One record per image: its id, its embedding, the caption as the Chroma *document*, the image file's absolute
path as the record *URI* (images are never inlined into metadata), the user's metadata fields, and bookkeeping
fields prefixed ``focus_`` (content hash, size). The collection's metadata records which embedder built it; a
store opened with another embedder raises :class:`EmbedderMismatchError`.

Ingest is incremental and crash-safe: files are hashed (sha256) and an image whose bytes, caption source and
metadata are unchanged is skipped; records are upserted in batches (each batch is one Chroma write), so a
process killed mid-ingest leaves every finished batch in place and a re-run completes the rest. Unreadable,
truncated, empty or oversized images are skipped with a reason in :class:`IngestReport`; they never abort
the ingest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import chromadb
import numpy as np
from chromadb.config import Settings
from PIL import Image

from focus_integrations.errors import ImageLoadError, InvalidOptionError, ModelNotFoundError
from focus_integrations.images import MAX_IMAGE_PIXELS, load_image
from focus_integrations.store.chroma_ef import FocusEmbeddingFunction
from focus_integrations.store.embedders import DEFAULT_EMBEDDER_SPEC, Embedder, load_embedder
from focus_integrations.store.errors import (
    DuplicateIdError,
    EmbedderCapabilityError,
    EmbedderMismatchError,
    InvalidCollectionNameError,
    RecordNotFoundError,
    StoreConnectionError,
    StoreError,
)
from focus_integrations.store.sidecars import (
    SidecarEntry,
    caption_from_filename,
    caption_from_text_file,
    read_folder_sidecars,
)

DEFAULT_COLLECTION = "focus-images"
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
STORE_FORMAT = 1
RESERVED_PREFIX = "focus_"


def chroma_settings() -> Settings:
    """Settings for a new Chroma client: telemetry off, everything else Chroma's default.

    A fresh object per client on purpose: ``PersistentClient`` / ``HttpClient`` write the path or port INTO the
    settings object they get, so one shared object would be rewritten by every new client (and an
    ``HttpClient`` then refuses a second port). Chroma compares settings by value when it reuses a cached
    client for a path, so equal fresh objects are accepted.
    """
    return Settings(anonymized_telemetry=False)


#: Kept for code written against the first version of this module. Prefer :func:`chroma_settings`: Chroma's
#: client constructors mutate the object they get (path, port, persistence), so sharing one is fragile.
CHROMA_SETTINGS = chroma_settings()


ImageSource = Union[str, "os.PathLike[str]", Image.Image, bytes, bytearray, np.ndarray]
Captioner = Callable[[Image.Image], str]
MetadataFn = Callable[[Path], Mapping[str, Any]]

_COLLECTION_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")

# Keys of the bookkeeping metadata stored on every record.
_SHA = "focus_sha256"
_SOURCE_SHA = "focus_source_sha256"
_WIDTH = "focus_width"
_HEIGHT = "focus_height"
_FORMAT = "focus_format"
_CAPTION_BY = "focus_caption_source"
_ROOT = "focus_root"


def default_store_path() -> Path:
    """``$FOCUS_STORE_PATH``, else ``~/.cache/focus_integrations/store``."""
    env = os.environ.get("FOCUS_STORE_PATH")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "focus_integrations" / "store"


def validate_collection_name(name: str) -> str:
    """Return ``name`` if Chroma accepts it, else raise :class:`InvalidCollectionNameError` saying why."""
    if not isinstance(name, str):
        raise InvalidCollectionNameError(f"collection name must be a string, got {type(name).__name__}")
    if not _COLLECTION_NAME.fullmatch(name) or ".." in name or _IPV4.fullmatch(name):
        raise InvalidCollectionNameError(
            f"invalid collection name {name!r}: use 3-512 characters from [a-zA-Z0-9._-], starting and ending "
            "with a letter or digit, no '..', not an IPv4 address"
        )
    return name


@dataclass(frozen=True)
class ImageHit:
    """One stored image: what a query or ``get`` returns. ``distance`` is cosine distance (None from ``get``)."""

    id: str
    uri: str
    caption: str
    metadata: dict[str, Any]
    distance: float | None = None
    sha256: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.uri)

    def image(self) -> Image.Image:
        """Load the image (RGB) from its stored path; raises :class:`ImageLoadError` if it is gone."""
        return load_image(self.uri)


@dataclass
class ImageItem:
    """An image to ingest: a path, or an in-memory image (PIL, bytes, array) that the store saves as a file."""

    image: ImageSource
    id: str | None = None
    caption: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestReport:
    """What an ingest did, id by id. Failed items are ``(path or id, reason)``."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped_unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # pruned records (add_folder(prune=True))
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        text = (
            f"added {len(self.added)}, updated {len(self.updated)}, "
            f"unchanged {len(self.skipped_unchanged)}, failed {len(self.failed)}"
        )
        return text + (f", deleted {len(self.deleted)}" if self.deleted else "")

    def __str__(self) -> str:
        return self.summary()


@dataclass
class _Candidate:
    """One image on its way into the store."""

    id: str
    label: str  # what a failure is reported as: the file path, or the id for in-memory images
    path: Path | None  # file on disk (None until an in-memory image is saved)
    data: bytes | None  # in-memory bytes (encoded image)
    caption: str | None  # caption from the user or a sidecar; None -> captioner or file name
    caption_source: str
    metadata: dict[str, Any]
    root: str | None = None  # the folder an add_folder() call indexed (lets prune find its records)


class ImageStore:
    """A Chroma collection of images.

    Exactly one of ``path`` (embedded ``PersistentClient``, the default: :func:`default_store_path`),
    ``url`` (``http://host:port`` of a ``chroma run`` server, via ``HttpClient``) or ``client`` (any Chroma
    client you made) chooses where it lives.

    ``embedder`` is an :class:`Embedder`, a spec string (``"minilm"``, ``"clip:PATH"``, ...) or None: a new
    store then uses ``"minilm"`` and an existing one the embedder recorded in it.

    ``media_dir`` is where in-memory images passed to :meth:`add_images` are saved as files (default
    ``<path>/media`` for an embedded store; required for server stores that get in-memory images).
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
    ) -> None:
        if sum(x is not None for x in (path, client, url)) > 1:
            raise InvalidOptionError("give at most one of path=, client=, url=")
        self.collection_name = validate_collection_name(collection)
        _check_positive_int("max_pixels", max_pixels)
        _check_positive_int("max_file_bytes", max_file_bytes)
        _check_positive_int("batch_size", batch_size)
        self.max_pixels, self.max_file_bytes, self.batch_size = max_pixels, max_file_bytes, batch_size
        self.path: Path | None = None
        self.url: str | None = None
        if client is not None:
            self.client = client
        elif url is not None:
            self.url = url
            self.client = _http_client(url)
        else:
            self.path = Path(path).expanduser() if path is not None else default_store_path()
            self.client = _persistent_client(self.path)
        try:
            max_batch = int(self.client.get_max_batch_size())
        except (AttributeError, NotImplementedError):
            max_batch = 1000  # a client without the call: a size every Chroma accepts
        except Exception as err:
            _raise_if_connection_error(err, self.url)
            raise
        if batch_size > max_batch:
            raise InvalidOptionError(f"batch_size={batch_size} exceeds this Chroma's maximum of {max_batch}")
        self._max_batch = max_batch
        if media_dir is not None:
            self.media_dir: Path | None = Path(media_dir).expanduser()
        else:
            self.media_dir = self.path / "media" if self.path is not None else None
        self.embedder, self._raw_collection = self._open_collection(embedder)
        # Over HTTP, a server that goes away mid-session surfaces as StoreConnectionError, not an httpx error.
        self._collection = (
            _ServerGuard(self._raw_collection, url) if url is not None else self._raw_collection
        )

    # ----------------------------------------------------------------------------------------------- opening

    def _open_collection(self, embedder: Embedder | str | None) -> tuple[Embedder, Any]:
        existing = self._existing_collection()
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
        try:
            if ef is None:
                return self.client.get_collection(self.collection_name)
            return self.client.get_collection(self.collection_name, embedding_function=ef)
        except Exception as err:
            _raise_if_connection_error(err, self.url)
            raise

    def _create_collection(self, embedder: Embedder) -> Any:
        from chromadb.errors import UniqueConstraintError

        metadata = {
            "focus_store_format": STORE_FORMAT,
            "focus_embedder": embedder.name,
            "focus_embedder_spec": embedder.spec,
            "focus_embedder_dim": embedder.dim,
            "focus_embeds": "image" if embedder.supports_images else "text",
        }
        try:
            return self.client.create_collection(
                self.collection_name,
                embedding_function=FocusEmbeddingFunction(embedder),
                metadata=metadata,
                configuration={"hnsw": {"space": "cosine"}},
            )
        except UniqueConstraintError:
            # Another process created it between our look-up and now: open it the normal way.
            return self._open_collection(embedder)[1]
        except Exception as err:
            _raise_if_connection_error(err, self.url)
            raise

    @property
    def collection(self) -> Any:
        """The underlying ``chromadb`` collection (for anything this class does not wrap)."""
        return self._raw_collection

    # ------------------------------------------------------------------------------------------------ ingest

    def add_folder(
        self,
        directory: str | os.PathLike[str],
        *,
        recursive: bool = True,
        metadata_fn: MetadataFn | None = None,
        captioner: Captioner | None = None,
        progress: bool | None = None,
        prune: bool = False,
    ) -> IngestReport:
        """Ingest every image file under ``directory`` (see :mod:`focus_integrations.store.sidecars`).

        Record ids are the files' paths relative to ``directory`` (posix style) unless a sidecar gives an
        ``id``. ``metadata_fn(path)`` may add fields (its ``caption`` and ``id`` keys, if any, take precedence).
        ``captioner(image) -> str`` captions images that have no caption from the user or a sidecar.
        Raises :class:`DuplicateIdError` (before writing anything) if two files map to the same id.
        ``prune=True`` also deletes the records an earlier ingest of this folder made for files that are gone
        (``report.deleted``); records of files that failed this time are kept.
        """
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise StoreError(f"not a directory: {root}")
        root_key = str(root.resolve())
        candidates: list[_Candidate] = []
        report = IngestReport()
        sidecar_cache: dict[Path, dict[str, SidecarEntry]] = {}
        kept: set[str] = set()
        for file in _image_files(root, recursive=recursive, exclude=self.path):
            relative = file.relative_to(root).as_posix()
            try:
                entry = _sidecar_entry(file, root, sidecar_cache)
                caption, source = entry.caption, "sidecar"
                if caption is None:
                    caption = caption_from_text_file(file)
                metadata = dict(entry.metadata)
                record_id = entry.id or relative
                if metadata_fn is not None:
                    extra = dict(metadata_fn(file))
                    caption = extra.pop("caption", caption)
                    record_id = str(extra.pop("id", record_id))
                    metadata.update(extra)
                    source = "user" if "caption" in extra else source
                if caption is None:
                    source = "file"
            except StoreError:
                raise  # malformed sidecar: the user must fix it, ingesting half a catalog would mislead
            except Exception as err:  # noqa: BLE001 - a user callback failing on one file must not stop the rest
                report.failed.append((str(file), f"metadata_fn failed: {type(err).__name__}: {err}"))
                kept.add(relative)  # its id is unknown: at least never prune the record of that path
                continue
            candidates.append(
                _Candidate(record_id, str(file), file, None, caption, source, metadata, root_key)
            )
            kept.add(record_id)
        for folder, entries in sidecar_cache.items():
            for name in entries:
                if not (folder / name).is_file():
                    report.warnings.append(f"{folder}: sidecar entry {name!r} names no image file")
        self._ingest(candidates, report, captioner=captioner, progress=progress)
        if prune:
            recorded = self._collection.get(where={_ROOT: root_key}, include=[])["ids"]
            report.deleted = sorted(set(recorded) - kept)
            self._delete_ids(report.deleted)
        return report

    def add_images(
        self,
        items: Iterable[ImageItem | ImageSource | Mapping[str, Any]],
        *,
        captioner: Captioner | None = None,
        progress: bool | None = None,
    ) -> IngestReport:
        """Ingest images given one by one: paths, :class:`ImageItem` objects or dicts with the same keys.

        Default ids: a file's absolute path; for an in-memory image ``sha256:<16 hex digits of its bytes>``.
        In-memory images are saved under :attr:`media_dir` (named by content hash) so that the store keeps a
        path to them. Raises :class:`DuplicateIdError` (before writing anything) if an id repeats.
        """
        candidates: list[_Candidate] = []
        report = IngestReport()
        for position, raw in enumerate(items):
            item = _as_item(raw, position)
            caption_source = "user" if item.caption is not None else "file"
            file = _local_path(item.image)
            if file is not None:
                record_id = item.id if item.id is not None else file.as_posix()
                candidates.append(
                    _Candidate(
                        record_id, str(file), file, None, item.caption, caption_source, dict(item.metadata)
                    )
                )
                continue
            try:
                data = _encode_in_memory(item.image)
            except ImageLoadError as err:
                report.failed.append((item.id or f"item {position}", str(err)))
                continue
            record_id = item.id if item.id is not None else "sha256:" + hashlib.sha256(data).hexdigest()[:16]
            candidates.append(
                _Candidate(
                    record_id, record_id, None, data, item.caption, caption_source, dict(item.metadata)
                )
            )
        return self._ingest(candidates, report, captioner=captioner, progress=progress)

    def _ingest(
        self,
        candidates: list[_Candidate],
        report: IngestReport,
        *,
        captioner: Captioner | None,
        progress: bool | None,
    ) -> IngestReport:
        _check_unique_ids(candidates)
        if any(c.data is not None for c in candidates) and self.media_dir is None:
            raise InvalidOptionError("in-memory images need media_dir= (a folder the store can save them in)")
        bar = _progress_bar(len(candidates), progress)
        try:
            for start in range(0, len(candidates), self.batch_size):
                batch = candidates[start : start + self.batch_size]
                self._ingest_batch(batch, report, captioner)
                bar.update(len(batch))
        finally:
            bar.close()
        return report

    def _ingest_batch(
        self, batch: list[_Candidate], report: IngestReport, captioner: Captioner | None
    ) -> None:
        existing, existing_uris = self._existing_records([c.id for c in batch])
        rows: list[tuple[_Candidate, str, Image.Image, str, dict[str, Any]]] = []
        for candidate in batch:
            try:
                data = candidate.data if candidate.data is not None else self._read_file(candidate.path)
                sha = hashlib.sha256(data).hexdigest()
                metadata = _sanitize_metadata(candidate.metadata, candidate.label)
                source_sha = _source_fingerprint(candidate.caption, metadata)
                previous = existing.get(candidate.id)
                moved = candidate.path is not None and existing_uris.get(candidate.id) != str(
                    candidate.path.absolute()
                )
                if (
                    previous is not None
                    and previous.get(_SHA) == sha
                    and previous.get(_SOURCE_SHA) == source_sha
                    and not moved
                ):
                    report.skipped_unchanged.append(candidate.id)
                    continue
                image, image_format = self._decode(data, candidate.label)
                if candidate.path is None:
                    candidate.path = self._save_media(data, sha, image_format)
            except (ImageLoadError, OSError, StoreError) as err:
                report.failed.append((candidate.label, _reason(err)))
                continue
            caption, caption_by = candidate.caption, candidate.caption_source
            if caption is None and captioner is not None:
                try:
                    caption, caption_by = str(captioner(image)).strip(), "captioner"
                except Exception as err:  # noqa: BLE001 - a captioner failing on one image falls back, never aborts
                    report.warnings.append(
                        f"{candidate.label}: captioner failed ({type(err).__name__}: {err})"
                    )
            if not caption:
                caption = caption_from_filename(candidate.path) if candidate.data is None else candidate.id
                caption_by = "file"
            metadata.update(
                {
                    _SHA: sha,
                    _SOURCE_SHA: source_sha,
                    _WIDTH: image.width,
                    _HEIGHT: image.height,
                    _FORMAT: image_format,
                    _CAPTION_BY: caption_by,
                }
            )
            if candidate.root is not None:
                metadata[_ROOT] = candidate.root
            # Chroma's upsert merges metadata: fields the new version no longer has must be cleared with None.
            metadata.update({key: None for key in existing.get(candidate.id, {}) if key not in metadata})
            rows.append((candidate, caption, image, str(candidate.path.absolute()), metadata))
            (report.updated if candidate.id in existing else report.added).append(candidate.id)
        if not rows:
            return
        embeddings = self._embed_records([(caption, image, meta) for _, caption, image, _, meta in rows])
        # One upsert per batch: Chroma writes it as one unit, so a killed ingest never leaves half a batch.
        self._collection.upsert(
            ids=[c.id for c, *_ in rows],
            embeddings=embeddings,
            documents=[caption for _, caption, *_ in rows],
            uris=[uri for *_, uri, _ in rows],
            metadatas=[meta for *_, meta in rows],
        )

    def _existing_records(self, ids: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Metadata and URI of the records among ``ids`` that the store already holds."""
        if not ids:
            return {}, {}
        found = self._collection.get(ids=ids, include=["metadatas", "uris"])
        metadata = {record_id: dict(meta or {}) for record_id, meta in zip(found["ids"], found["metadatas"])}
        uris = {
            record_id: uri
            for record_id, uri in zip(found["ids"], found["uris"] or [None] * len(found["ids"]))
        }
        return metadata, uris

    def _read_file(self, path: Path | None) -> bytes:
        assert path is not None
        if not path.is_file():
            raise ImageLoadError(f"not a file: {path}")
        size = path.stat().st_size
        if size > self.max_file_bytes:
            raise ImageLoadError(f"file is too large: {size} bytes > max_file_bytes={self.max_file_bytes}")
        return path.read_bytes()

    def _decode(self, data: bytes, label: str) -> tuple[Image.Image, str]:
        if len(data) > self.max_file_bytes:
            raise ImageLoadError(
                f"image is too large: {len(data)} bytes > max_file_bytes={self.max_file_bytes}"
            )
        try:
            # Read the header only, to refuse huge images before decoding a single pixel.
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
                image_format = (header.format or "PNG").upper()
        except Image.DecompressionBombError as err:
            raise ImageLoadError(f"image is too large: {err}") from None
        except Exception:  # noqa: BLE001 - PIL raises many types for non-images
            raise ImageLoadError("not a readable image (unknown format or corrupt header)") from None
        if width * height > self.max_pixels:
            raise ImageLoadError(
                f"image is too large: {width}x{height} = {width * height} pixels > "
                f"max_pixels={self.max_pixels}"
            )
        return load_image(data), image_format

    def _save_media(self, data: bytes, sha: str, image_format: str) -> Path:
        assert self.media_dir is not None
        extension = {"JPEG": ".jpg", "TIFF": ".tif"}.get(image_format, "." + image_format.lower())
        self.media_dir.mkdir(parents=True, exist_ok=True)
        target = self.media_dir / f"{sha}{extension}"
        if not target.exists():
            # Write then rename: a killed process never leaves a half-written image under the final name.
            partial = target.with_suffix(target.suffix + ".partial")
            partial.write_bytes(data)
            os.replace(partial, target)
        return target

    def _embed_records(self, records: Sequence[tuple[str, Image.Image, dict[str, Any]]]) -> list[list[float]]:
        if self.embedder.supports_images:
            return self.embedder.embed_images([image for _, image, _ in records])
        return self.embedder.embed_texts([index_text(caption, meta) for caption, _, meta in records])

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

    # ----------------------------------------------------------------------------------------------- reading

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

    def __repr__(self) -> str:
        where = self.url or (str(self.path) if self.path else type(self.client).__name__)
        return f"ImageStore({where!r}, collection={self.collection_name!r}, embedder={self.embedder.name!r})"


# ---------------------------------------------------------------------------------------------------- helpers


def index_text(caption: str, metadata: Mapping[str, Any]) -> str:
    """The text a text-only embedder indexes for an image: its caption, then its user metadata fields."""
    parts = [caption.strip()] if caption and caption.strip() else []
    for key, value in metadata.items():
        if key.startswith(RESERVED_PREFIX) or isinstance(value, bool):
            continue
        if isinstance(value, (str, int, float)) and str(value).strip():
            parts.append(f"{key.replace('_', ' ')}: {value}")
    return ". ".join(parts)


def _persistent_client(path: Path) -> Any:
    if path.exists() and not path.is_dir():
        raise StoreError(f"store path {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings())


def _http_client(url: str) -> Any:
    parsed = urllib.parse.urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidOptionError(f"chroma URL must look like http://host:port, got {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 8000)
    try:
        client = chromadb.HttpClient(
            host=parsed.hostname, port=port, ssl=parsed.scheme == "https", settings=chroma_settings()
        )
        client.heartbeat()
    except Exception as err:  # noqa: BLE001 - connection failures come in many types (httpx, ValueError, ...)
        raise StoreConnectionError(f"cannot reach the Chroma server at {url}: {_reason(err)}") from None
    return client


def _raise_if_connection_error(err: Exception, url: str | None) -> None:
    if url is None:
        return
    name = type(err).__name__
    # httpx's transport errors (ConnectError, ReadTimeout, RemoteProtocolError...) are not OSErrors.
    transport = type(err).__module__.startswith("httpx") and "Status" not in name
    if (
        isinstance(err, (ConnectionError, TimeoutError))
        or "Connect" in name
        or "Timeout" in name
        or transport
    ):
        raise StoreConnectionError(f"lost the Chroma server at {url}: {_reason(err)}") from None


class _ServerGuard:
    """Proxy of a collection on a Chroma server: its methods raise StoreConnectionError when the server is gone."""

    def __init__(self, collection: Any, url: str) -> None:
        self._wrapped = collection
        self._url = url

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._wrapped, name)
        if not callable(attribute):
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except Exception as err:
                _raise_if_connection_error(err, self._url)
                raise

        return guarded


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}")


def _image_files(root: Path, *, recursive: bool, exclude: Path | None) -> Iterator[Path]:
    excluded = exclude.resolve() if exclude is not None else None
    pattern = root.rglob("*") if recursive else root.glob("*")
    for path in sorted(pattern):
        relative_parts = path.relative_to(root).parts
        if any(part.startswith(".") for part in relative_parts):
            continue  # hidden files and folders (.git, .DS_Store, editors' temp files)
        if excluded is not None and (path.resolve() == excluded or excluded in path.resolve().parents):
            continue  # never index the store's own files (media/) when it lives inside the folder
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            yield path


def _sidecar_entry(file: Path, root: Path, cache: dict[Path, dict[str, SidecarEntry]]) -> SidecarEntry:
    folder = file.parent
    while True:
        if folder not in cache:
            cache[folder] = read_folder_sidecars(folder)
        entry = cache[folder].get(file.relative_to(folder).as_posix())
        if entry is not None:
            return entry
        if folder == root or root not in folder.parents:
            return SidecarEntry()
        folder = folder.parent


def _as_item(raw: Any, position: int) -> ImageItem:
    if isinstance(raw, ImageItem):
        return raw
    if isinstance(raw, Mapping):
        if "image" not in raw:
            raise InvalidOptionError(f"item {position}: a dict item needs an 'image' key")
        extra = {k: v for k, v in raw.items() if k not in ("image", "id", "caption", "metadata")}
        metadata = {**dict(raw.get("metadata") or {}), **extra}
        record_id = raw.get("id")
        return ImageItem(
            raw["image"], None if record_id is None else str(record_id), raw.get("caption"), metadata
        )
    if isinstance(raw, (str, os.PathLike, Image.Image, bytes, bytearray, np.ndarray)):
        return ImageItem(raw)
    raise InvalidOptionError(f"item {position}: cannot ingest a {type(raw).__name__}")


def _local_path(source: Any) -> Path | None:
    """The file a path-like source names (``file://`` URLs included); None for in-memory images and URIs."""
    if isinstance(source, os.PathLike):
        return Path(source).expanduser().absolute()
    if not isinstance(source, str) or source[:5].lower() == "data:":
        return None
    if source[:7].lower() == "file://":
        return Path(urllib.parse.unquote(urllib.parse.urlparse(source).path)).absolute()
    if source[:7].lower() == "http://" or source[:8].lower() == "https://":
        return None  # load_image refuses remote URLs with a clear error
    return Path(source).expanduser().absolute()


def _encode_in_memory(source: Any) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    image = load_image(source)  # PIL, array, data URI: validated and converted to RGB
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _check_unique_ids(candidates: list[_Candidate]) -> None:
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    for candidate in candidates:
        if not isinstance(candidate.id, str) or not candidate.id:
            raise InvalidOptionError(f"{candidate.label}: record id must be a non-empty string")
        if candidate.id in seen:
            duplicates.append(f"{candidate.id!r} ({seen[candidate.id]} and {candidate.label})")
        seen[candidate.id] = candidate.label
    if duplicates:
        raise DuplicateIdError(
            "duplicate record ids in one ingest: "
            + "; ".join(duplicates[:5])
            + (f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else "")
        )


def _sanitize_metadata(metadata: Mapping[str, Any], label: str) -> dict[str, Any]:
    """Chroma metadata holds str/int/float/bool values: keep those, drop None, store anything else as JSON."""
    clean: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise StoreError(f"{label}: metadata keys must be non-empty strings, got {key!r}")
        if key.startswith(RESERVED_PREFIX):
            raise StoreError(f"{label}: metadata key {key!r} uses the reserved prefix {RESERVED_PREFIX!r}")
        if value is None:
            continue
        if isinstance(value, (str, bool, int)):
            clean[key] = value
        elif isinstance(value, float):
            if not np.isfinite(value):
                raise StoreError(f"{label}: metadata {key!r} is not a finite number")
            clean[key] = value
        else:
            try:
                clean[key] = json.dumps(value, sort_keys=True, default=str)
            except (TypeError, ValueError) as err:
                raise StoreError(f"{label}: metadata {key!r} cannot be stored: {err}") from None
    return clean


def _source_fingerprint(caption: str | None, metadata: Mapping[str, Any]) -> str:
    payload = json.dumps({"caption": caption, "metadata": metadata}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _column(found: Mapping[str, Any], key: str, length: int, *, query: bool = False) -> list[Any]:
    """One result column; Chroma returns None for a column no record has (records written by other tools)."""
    column = found.get(key)
    if column is None:
        return [None] * length
    return list(column[0] if query else column)


def _hit(
    record_id: str,
    uri: str | None,
    document: str | None,
    metadata: Mapping[str, Any] | None,
    distance: float | None,
) -> ImageHit:
    meta = dict(metadata or {})
    user = {k: v for k, v in meta.items() if not k.startswith(RESERVED_PREFIX)}
    return ImageHit(
        id=record_id,
        uri=uri or "",
        caption=document or "",
        metadata=user,
        distance=distance,
        sha256=meta.get(_SHA),
    )


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, progress: bool | None) -> Any:
    """tqdm on stderr; ``None`` shows it for long ingests on a terminal only."""
    show = progress if progress is not None else (total >= 64 and sys.stderr.isatty())
    if not show:
        return _NullBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        warnings.warn("install tqdm for an ingest progress bar", stacklevel=3)
        return _NullBar()
    return tqdm(total=total, desc="indexing images", unit="img")
