"""Captions and metadata for a folder of images, read from sidecar files.

In each folder that holds images, in this order of precedence:

1. ``catalog.json`` - a JSON list of objects (or ``{"items": [...]}``), each naming its image with ``file``
   (or ``path`` / ``image``) relative to that folder, with optional ``id``, ``caption`` (or ``description``)
   and any other fields, which become metadata;
2. ``metadata.jsonl`` - one such object per line;
3. ``<image file>.txt`` (``photo.png.txt``) or ``<image stem>.txt`` (``photo.txt``) - the caption;
4. otherwise the caption is made from the file name (``blue_circle-pendant.png`` -> "blue circle pendant").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focus_integrations.store.errors import StoreError

CATALOG_FILE = "catalog.json"
METADATA_FILE = "metadata.jsonl"
_FILE_KEYS = ("file", "path", "image")
_CAPTION_KEYS = ("caption", "description")


class SidecarError(StoreError, ValueError):
    """A ``catalog.json`` / ``metadata.jsonl`` file is malformed."""


@dataclass
class SidecarEntry:
    id: str | None = None
    caption: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def caption_from_filename(path: Path) -> str:
    words = re.sub(r"[_\-.]+", " ", path.stem).strip()
    return re.sub(r"\s+", " ", words) or path.name


def read_folder_sidecars(folder: Path) -> dict[str, SidecarEntry]:
    """Entries of ``catalog.json`` and ``metadata.jsonl`` in ``folder``, keyed by image file name."""
    try:
        return _read_folder_sidecars(folder)
    except (OSError, UnicodeDecodeError) as err:
        raise SidecarError(f"{folder}: cannot read its sidecar file: {err}") from None


def _read_folder_sidecars(folder: Path) -> dict[str, SidecarEntry]:
    entries: dict[str, SidecarEntry] = {}
    jsonl = folder / METADATA_FILE
    if jsonl.is_file():
        for number, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                _add_entry(entries, _parse_json(line, f"{jsonl}:{number}"), f"{jsonl}:{number}")
    catalog = folder / CATALOG_FILE
    if catalog.is_file():  # read last: catalog.json wins over metadata.jsonl
        data = _parse_json(catalog.read_text(encoding="utf-8"), str(catalog))
        items = data.get("items") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise SidecarError(f"{catalog}: expected a list of objects or {{'items': [...]}}")
        for index, item in enumerate(items):
            _add_entry(entries, item, f"{catalog}[{index}]")
    return entries


def caption_from_text_file(image_path: Path) -> str | None:
    for candidate in (image_path.with_name(image_path.name + ".txt"), image_path.with_suffix(".txt")):
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                return text
    return None


def _parse_json(text: str, origin: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SidecarError(f"{origin}: invalid JSON: {err}") from None


def _add_entry(entries: dict[str, SidecarEntry], item: Any, origin: str) -> None:
    if not isinstance(item, dict):
        raise SidecarError(f"{origin}: expected an object, got {type(item).__name__}")
    fields = dict(item)
    file_name = next((fields.pop(key) for key in _FILE_KEYS if key in fields), None)
    if not isinstance(file_name, str) or not file_name:
        raise SidecarError(f"{origin}: no image file named ('file', 'path' or 'image')")
    caption = next((fields.pop(key) for key in _CAPTION_KEYS if key in fields), None)
    record_id = fields.pop("id", None)
    entries[Path(file_name).as_posix()] = SidecarEntry(
        id=None if record_id is None else str(record_id),
        caption=None if caption is None else str(caption),
        metadata=fields,
    )


def bundled_catalog_path() -> Path:
    """Folder of the bundled toy product catalog (24 easy-vqa shapes dressed as products, with catalog.json)."""
    return Path(__file__).resolve().parent.parent / "assets" / "catalog"
