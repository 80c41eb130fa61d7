"""What the store holds and returns: records, ingest items and reports, and the metadata rules they follow.

One record per image: its id, its embedding, the caption as the Chroma *document*, the image file's absolute
path as the record *URI*, the user's metadata fields, and bookkeeping fields prefixed ``focus_``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from focus_integrations.errors import InvalidOptionError
from focus_integrations.images import load_image
from focus_integrations.store.errors import StoreError

RESERVED_PREFIX = "focus_"

ImageSource = Union[str, "os.PathLike[str]", Image.Image, bytes, bytearray, np.ndarray]
Captioner = Callable[[Image.Image], str]
MetadataFn = Callable[[Path], Mapping[str, Any]]

# Keys of the bookkeeping metadata stored on every record.
_SHA = "focus_sha256"
_SOURCE_SHA = "focus_source_sha256"
_WIDTH = "focus_width"
_HEIGHT = "focus_height"
_FORMAT = "focus_format"
_CAPTION_BY = "focus_caption_source"
_ROOT = "focus_root"


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


def index_text(caption: str, metadata: Mapping[str, Any]) -> str:
    """The text a text-only embedder indexes for an image: its caption, then its user metadata fields."""
    parts = [caption.strip()] if caption and caption.strip() else []
    for key, value in metadata.items():
        if key.startswith(RESERVED_PREFIX) or isinstance(value, bool):
            continue
        if isinstance(value, (str, int, float)) and str(value).strip():
            parts.append(f"{key.replace('_', ' ')}: {value}")
    return ". ".join(parts)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}")


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
