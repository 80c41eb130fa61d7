"""The per-example record file: one JSON object a line, appended (and flushed to disk) as each answer comes.

A record's key is ``(split, mode, alpha, id)``; a run that was killed (even with SIGKILL mid-write) resumes
by reading the file, dropping a torn last line, and skipping every key already there, so nothing is
recomputed or duplicated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

RECORDS = "records.jsonl"

Key = tuple[str, str, float, str]


def record_key(record: dict[str, Any]) -> Key:
    return (record["split"], record["mode"], float(record["alpha"]), record["id"])


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record of ``path`` (a torn last line is ignored); later duplicates of a key are dropped."""
    if not path.is_file():
        return []
    out: dict[Key, dict[str, Any]] = {}
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break  # torn write of a killed run
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            out.setdefault(record_key(record), record)
    return list(out.values())


class RecordWriter:
    """Appends records to ``path``; on open, cuts a torn last line left by a killed run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(path)
        self._handle = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cut_torn_tail(path: Path) -> None:
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def merge_record_files(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Records of several runs (shards), each key once."""
    seen: set[Key] = set()
    for path in paths:
        for record in read_records(path):
            key = record_key(record)
            if key not in seen:
                seen.add(key)
                yield record
