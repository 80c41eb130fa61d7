"""What an ingest takes in, before anything is decoded or written: the image files of a folder (and their
sidecar captions), the items of an image list as :class:`_Candidate` records (ids, labels, in-memory bytes),
the checks that keep text Chroma cannot store out, and the progress bar."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from focus_integrations.errors import ImageLoadError, InvalidOptionError
from focus_integrations.images import load_image
from focus_integrations.store.errors import DuplicateIdError, StoreError
from focus_integrations.store.records import ImageItem, _reason
from focus_integrations.store.sidecars import SidecarEntry, SidecarError, read_folder_sidecars

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024


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


def _sidecar_entry(
    file: Path, root: Path, cache: dict[Path, dict[str, SidecarEntry] | SidecarError]
) -> SidecarEntry:
    folder = file.parent
    while True:
        if folder not in cache:
            try:
                cache[folder] = read_folder_sidecars(folder)
            except SidecarError as err:
                cache[folder] = err  # read once: every file that relies on it fails with the same reason
        entries = cache[folder]
        if isinstance(entries, SidecarError):
            raise entries
        entry = entries.get(file.relative_to(folder).as_posix())
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


def _item_candidate(raw: Any, position: int) -> _Candidate:
    item = _as_item(raw, position)
    caption_source = "user" if item.caption is not None else "file"
    file = _local_path(item.image)
    if file is not None:
        record_id = item.id if item.id is not None else file.as_posix()
        return _Candidate(record_id, str(file), file, None, item.caption, caption_source, dict(item.metadata))
    data = _encode_in_memory(item.image)
    record_id = item.id if item.id is not None else "sha256:" + hashlib.sha256(data).hexdigest()[:16]
    return _Candidate(record_id, record_id, None, data, item.caption, caption_source, dict(item.metadata))


def _unstorable(candidate: _Candidate) -> str | None:
    """Why Chroma could not store this candidate's id, caption, path or metadata as text; None if it can."""
    if not isinstance(candidate.id, str) or not candidate.id:
        return f"record id must be a non-empty string, got {candidate.id!r}"
    if candidate.caption is not None and not isinstance(candidate.caption, str):
        return f"caption must be a string, got {type(candidate.caption).__name__}"
    texts = [
        ("file name", str(candidate.path) if candidate.path is not None else ""),
        ("record id", candidate.id),
    ]
    texts.append(("caption", candidate.caption or ""))
    for key, value in candidate.metadata.items():
        texts.append(("metadata key", key if isinstance(key, str) else ""))
        if isinstance(value, str):
            texts.append((f"metadata {key!r}", value))
    for what, text in texts:
        try:
            _checked_text(text, what)
        except StoreError as err:
            return str(err)
    return None


def _checked_text(text: str, what: str) -> str:
    """``text`` if it is valid Unicode that UTF-8 can encode (no lone surrogates), else StoreError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode("utf-8")[:120]
        raise StoreError(
            f"{what} is not valid UTF-8 text ({shown!r}): rename the file / fix the text (Chroma stores UTF-8)"
        ) from None
    return text


def _described(err: BaseException) -> str:
    """A one-line reason; the exception type is named when it is not one of ours."""
    reason = _reason(err)
    if isinstance(err, (ImageLoadError, StoreError)):
        return reason
    return f"{type(err).__name__}: {reason}"


def _check_unique_ids(candidates: list[_Candidate]) -> None:
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    for candidate in candidates:
        if candidate.id in seen:
            duplicates.append(f"{candidate.id!r} ({seen[candidate.id]} and {candidate.label})")
        seen[candidate.id] = candidate.label
    if duplicates:
        raise DuplicateIdError(
            "duplicate record ids in one ingest: "
            + "; ".join(duplicates[:5])
            + (f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else "")
        )


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
