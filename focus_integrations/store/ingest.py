"""Ingest: folders and image lists into the store, incrementally and one item at a time.

Files are hashed (sha256) and an image whose bytes, caption source and metadata are unchanged is skipped;
records are upserted in batches (each batch is one Chroma write), so a process killed mid-ingest leaves every
finished batch in place and a re-run completes the rest. Unreadable, truncated, empty or oversized images are
skipped with a reason in :class:`IngestReport`; they never abort the ingest.

This module holds the writing half (:class:`IngestMixin`: decode, caption, embed, upsert); what goes in (files
of a folder, items of a list, their checks) is :mod:`focus_integrations.store.candidates`.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from focus_integrations.errors import ImageLoadError, InvalidOptionError
from focus_integrations.images import load_image
from focus_integrations.store.candidates import (
    DEFAULT_MAX_FILE_BYTES,
    IMAGE_EXTENSIONS,
    _Candidate,
    _check_unique_ids,
    _checked_text,
    _described,
    _image_files,
    _item_candidate,
    _progress_bar,
    _sidecar_entry,
    _unstorable,
)
from focus_integrations.store.errors import StoreConnectionError, StoreError
from focus_integrations.store.records import (
    _CAPTION_BY,
    _FORMAT,
    _HEIGHT,
    _ROOT,
    _SHA,
    _SOURCE_SHA,
    _WIDTH,
    Captioner,
    ImageItem,
    ImageSource,
    IngestReport,
    MetadataFn,
    _reason,
    _sanitize_metadata,
    _source_fingerprint,
    index_text,
)
from focus_integrations.store.sidecars import (
    SidecarEntry,
    SidecarError,
    caption_from_filename,
    caption_from_text_file,
)

# The folder scan's extensions and the size limit live with the candidates; importable from here as before.
__all__ = ["DEFAULT_MAX_FILE_BYTES", "IMAGE_EXTENSIONS", "IngestMixin"]


@dataclass
class _Row:
    """A candidate ready to write: its caption, decoded image, URI and full metadata."""

    candidate: _Candidate
    caption: str
    image: Image.Image
    uri: str
    metadata: dict[str, Any]


class IngestMixin:
    """The ingest half of :class:`~focus_integrations.store.image_store.ImageStore` (which it is mixed into)."""

    # Set by ImageStore.__init__.
    path: Path | None
    media_dir: Path | None
    max_pixels: int
    max_file_bytes: int
    batch_size: int
    embedder: Any
    _collection: Any

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

        One bad item never costs the others: a file that cannot be named, captioned, read, embedded or
        written (a name that is not UTF-8, a caption with a lone surrogate, a corrupt image, a
        ``metadata_fn`` that raises, a malformed ``catalog.json`` for the files of its folder) is reported in
        ``report.failed`` and the rest are stored.
        """
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise StoreError(f"not a directory: {root}")
        root_key = str(root.resolve())
        candidates: list[_Candidate] = []
        report = IngestReport()
        sidecar_cache: dict[Path, dict[str, SidecarEntry] | SidecarError] = {}
        kept: set[str] = set()
        for file in _image_files(root, recursive=recursive, exclude=self.path):
            relative = file.relative_to(root).as_posix()
            kept.add(relative)  # until its id is known: never prune the record of a path that is still there
            try:
                entry = _sidecar_entry(file, root, sidecar_cache)
                caption, source = entry.caption, "sidecar"
                if caption is None:
                    caption = caption_from_text_file(file)
                metadata = dict(entry.metadata)
                record_id = entry.id or relative
            except SidecarError as err:  # malformed sidecar: its folder's files fail, the other folders go on
                report.failed.append((str(file), _reason(err)))
                continue
            except Exception as err:  # noqa: BLE001 - an unreadable caption file costs its image only
                report.failed.append((str(file), f"caption: {_described(err)}"))
                continue
            if metadata_fn is not None:
                try:
                    extra = dict(metadata_fn(file))
                    caption = extra.pop("caption", caption)
                    record_id = str(extra.pop("id", record_id))
                    metadata.update(extra)
                    source = "user" if "caption" in extra else source
                except Exception as err:  # noqa: BLE001 - a user callback failing on one file must not stop the rest
                    report.failed.append((str(file), f"metadata_fn failed: {_described(err)}"))
                    continue
            if caption is None:
                source = "file"
            candidates.append(
                _Candidate(record_id, str(file), file, None, caption, source, metadata, root_key)
            )
            kept.add(record_id)
        for folder, entries in sidecar_cache.items():
            for name in entries if isinstance(entries, dict) else ():
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
        path to them. Raises :class:`DuplicateIdError` (before writing anything) if an id repeats. An item
        that cannot be stored is reported in ``report.failed`` (as its id, else ``item N``); the rest are.
        """
        candidates: list[_Candidate] = []
        report = IngestReport()
        for position, raw in enumerate(items):
            try:
                candidates.append(_item_candidate(raw, position))
            except Exception as err:  # noqa: BLE001 - one bad item (type, image, id) costs only itself
                label = getattr(raw, "id", None) or (raw.get("id") if isinstance(raw, Mapping) else None)
                report.failed.append((str(label or f"item {position}"), _described(err)))
        return self._ingest(candidates, report, captioner=captioner, progress=progress)

    def _ingest(
        self,
        candidates: list[_Candidate],
        report: IngestReport,
        *,
        captioner: Captioner | None,
        progress: bool | None,
    ) -> IngestReport:
        storable = []
        for candidate in candidates:
            problem = _unstorable(candidate)
            if problem is None:
                storable.append(candidate)
            else:
                report.failed.append((candidate.label, problem))
        _check_unique_ids(storable)
        if any(c.data is not None for c in storable) and self.media_dir is None:
            raise InvalidOptionError("in-memory images need media_dir= (a folder the store can save them in)")
        bar = _progress_bar(len(storable), progress)
        try:
            for start in range(0, len(storable), self.batch_size):
                batch = storable[start : start + self.batch_size]
                self._ingest_batch(batch, report, captioner)
                bar.update(len(batch))
        finally:
            bar.close()
        return report

    def _ingest_batch(
        self, batch: list[_Candidate], report: IngestReport, captioner: Captioner | None
    ) -> None:
        existing, existing_uris = self._existing_records([c.id for c in batch])
        rows: list[_Row] = []
        for candidate in batch:
            try:
                row = self._prepare_row(candidate, existing, existing_uris, report, captioner)
            except StoreConnectionError:
                raise  # the server is gone: every later item would fail the same way
            except Exception as err:  # noqa: BLE001 - one unreadable / undecodable image costs only itself
                report.failed.append((candidate.label, _described(err)))
                continue
            if row is not None:
                rows.append(row)
        written = self._write_rows(rows, report)
        for row in written:
            (report.updated if row.candidate.id in existing else report.added).append(row.candidate.id)

    def _prepare_row(
        self,
        candidate: _Candidate,
        existing: dict[str, dict[str, Any]],
        existing_uris: dict[str, str],
        report: IngestReport,
        captioner: Captioner | None,
    ) -> _Row | None:
        """The record to write for ``candidate``, or None if the store already holds it unchanged."""
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
            return None
        image, image_format = self._decode(data, candidate.label)
        if candidate.path is None:
            candidate.path = self._save_media(data, sha, image_format)
        caption, caption_by = candidate.caption, candidate.caption_source
        if caption is None and captioner is not None:
            try:
                caption, caption_by = _checked_text(str(captioner(image)).strip(), "caption"), "captioner"
            except Exception as err:  # noqa: BLE001 - a captioner failing on one image falls back, never aborts
                caption = None
                report.warnings.append(f"{candidate.label}: captioner failed ({_described(err)})")
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
        return _Row(candidate, caption, image, str(candidate.path.absolute()), metadata)

    def _write_rows(self, rows: list[_Row], report: IngestReport) -> list[_Row]:
        """Embed and upsert ``rows`` as one batch; if that fails, one by one. Returns the rows written."""
        if not rows:
            return []
        try:
            self._upsert(rows)
            return rows
        except StoreConnectionError:
            raise
        except Exception:  # noqa: BLE001 - find the record(s) the batch failed on, store the others
            pass
        written = []
        for row in rows:
            try:
                self._upsert([row])
                written.append(row)
            except StoreConnectionError:
                raise
            except Exception as err:  # noqa: BLE001 - reported, the rest are stored
                report.failed.append(
                    (row.candidate.label, f"could not be embedded or written: {_described(err)}")
                )
        return written

    def _upsert(self, rows: list[_Row]) -> None:
        embeddings = self._embed_records([(row.caption, row.image, row.metadata) for row in rows])
        # One upsert per batch: Chroma writes it as one unit, so a killed ingest never leaves half a batch.
        self._collection.upsert(
            ids=[row.candidate.id for row in rows],
            embeddings=embeddings,
            documents=[row.caption for row in rows],
            uris=[row.uri for row in rows],
            metadatas=[row.metadata for row in rows],
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
