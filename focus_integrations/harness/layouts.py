"""Local copies of the benchmarks, in the layouts the hub publishes. Nothing is downloaded here.

Readers (Hugging Face ``datasets``, which decodes ``Image`` columns and lists of them to PIL lazily and
memory-maps arrow files):

- ``parquet``: ``<dir>/data/test-*.parquet`` (Winoground, MuirBench, MIRB-hf), ``<dir>/mantis_eval/test-*.parquet``
  (Mantis-Eval), read with ``load_dataset("parquet", data_files=...)``;
- ``arrow``: a ``save_to_disk`` tree (VisMin: ``<dir>/data/dataset_dict.json`` + ``data/test/*.arrow``), read
  with ``load_from_disk``;
- ``csv``: ``<dir>/vinoground.csv`` + unzipped ``vinoground_videos/{index}_{pos,neg}.mp4`` (or pre-extracted
  frame folders ``vinoground_frames/{index}_{pos,neg}/*.jpg|png``);
- ``json-tree``: MMLongBench's unpacked ``mmlb_data/`` (jsonl/json per task) and ``mmlb_image/``.

A hub cache folder (``.../datasets--org--name`` with ``snapshots/<sha>/``) is accepted too; the revision is
read from the snapshot name or from ``huggingface-cli download --local-dir`` metadata, so a report can say
which revision was evaluated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focus_integrations.errors import DatasetLayoutError
from focus_integrations.harness.spec import Benchmark


@dataclass
class LocalData:
    """Rows of a local benchmark copy (``rows[i]`` is a dict), the folder they came from, and its revision."""

    rows: Sequence[Mapping[str, Any]]
    root: Path
    files: list[str]
    revision: str | None

    def __len__(self) -> int:
        return len(self.rows)


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise DatasetLayoutError(
            "the evaluation harness reads benchmarks with Hugging Face datasets: pip install 'focus-integrations[eval]'"
        ) from None
    datasets.disable_progress_bars()
    return datasets


def _expected(benchmark: Benchmark) -> str:
    return (
        f"expected a local copy of {benchmark.hub_id} (revision {benchmark.revision}) in its hub layout: "
        f"{benchmark.layout.description}"
    )


def resolve_snapshot(path: Path) -> tuple[Path, str | None]:
    """``path`` itself, or the one snapshot inside a hub cache folder; and the revision if it is known."""
    snapshots = path / "snapshots"
    if snapshots.is_dir():
        found = sorted(p for p in snapshots.iterdir() if p.is_dir())
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise DatasetLayoutError(
                f"{path} is a hub cache folder with {len(found)} snapshots ({names}); pass the snapshot folder itself"
            )
        return found[0], found[0].name
    if path.parent.name == "snapshots":
        return path, path.name
    return path, _local_dir_revision(path)


def _local_dir_revision(path: Path) -> str | None:
    """The commit recorded by ``huggingface-cli download --local-dir`` (first line of any ``.metadata`` file)."""
    meta = path / ".cache" / "huggingface" / "download"
    if not meta.is_dir():
        return None
    for file in sorted(meta.rglob("*.metadata")):
        first = file.read_text(errors="replace").splitlines()[:1]
        if first and first[0].strip():
            return first[0].strip()
    return None


def _glob(root: Path, patterns: Sequence[str]) -> list[Path]:
    for pattern in patterns:
        files = sorted(p for p in root.glob(pattern) if p.is_file() or p.is_dir())
        if files:
            return files
    return []


def load_local(
    benchmark: Benchmark, path: str | os.PathLike[str], options: Mapping[str, Any] | None = None
) -> LocalData:
    """Open ``path`` as ``benchmark``'s local copy, or raise :class:`DatasetLayoutError` naming the layout."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DatasetLayoutError(f"{folder} does not exist; {_expected(benchmark)}")
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder} is not a folder; {_expected(benchmark)}")
    folder, revision = resolve_snapshot(folder)
    layout = benchmark.layout
    files = _glob(folder, layout.patterns)
    if not files:
        raise DatasetLayoutError(f"{folder} has none of {', '.join(layout.patterns)}; {_expected(benchmark)}")
    try:
        rows = _read(benchmark, folder, files, options)
    except (OSError, ValueError, *_reader_errors()) as err:
        if isinstance(err, DatasetLayoutError):
            raise
        detail = " ".join(str(getattr(err, "__cause__", None) or err).split())[:300]
        raise DatasetLayoutError(
            f"{folder}: its files cannot be read ({type(err).__name__}: {detail}); {_expected(benchmark)}"
        ) from err
    columns = getattr(rows, "column_names", None)
    required = layout.columns
    if columns is not None and required:
        missing = [c for c in required if c not in columns]
        if missing:
            raise DatasetLayoutError(
                f"{folder}: columns {', '.join(missing)} are missing (found {', '.join(columns)}); "
                f"{_expected(benchmark)}"
            )
    return LocalData(rows, folder, [str(f.relative_to(folder)) for f in files], revision)


def _reader_errors() -> tuple[type[BaseException], ...]:
    """What the readers raise on a corrupt or empty file (pyarrow's and datasets' own error types)."""
    import pyarrow

    return (pyarrow.ArrowException, _datasets().exceptions.DatasetsError)


def _read(
    benchmark: Benchmark, folder: Path, files: list[Path], options: Mapping[str, Any] | None
) -> Sequence[Mapping[str, Any]]:
    rows: Sequence[Mapping[str, Any]]
    cache = os.environ.get("HF_DATASETS_CACHE")
    # The matched files decide the reader (the leakage measure takes a Winoground or a VisMin copy).
    if benchmark.load_rows is not None:
        rows = benchmark.load_rows(folder, options or {})
    elif files[0].suffix == ".parquet":
        rows = _datasets().load_dataset(
            "parquet", data_files={"test": [str(f) for f in files]}, split="test", cache_dir=cache
        )
    elif files[0].suffix == ".json":
        rows = _load_arrow_tree(files[0], benchmark)
    elif files[0].suffix == ".csv":
        rows = _datasets().Dataset.from_csv(str(files[0]), cache_dir=cache)
    else:  # pragma: no cover - a table error
        raise DatasetLayoutError(f"no reader for {files[0].name}")
    return rows


def _load_arrow_tree(marker: Path, benchmark: Benchmark) -> Any:
    datasets = _datasets()
    tree = marker.parent
    loaded = datasets.load_from_disk(str(tree))
    if isinstance(loaded, datasets.DatasetDict):
        if "test" not in loaded:
            raise DatasetLayoutError(
                f"{tree} holds splits {', '.join(loaded)}, not test; {_expected(benchmark)}"
            )
        return loaded["test"]
    return loaded


def validation_indices(n: int, seed: int, fraction: float = 0.1) -> list[int]:
    """The reference runners' ``--split val``: ``dataset.shuffle(seed).select(range(int(0.1 * n)))``.

    ``datasets.Dataset.shuffle(seed)`` permutes with ``np.random.default_rng(seed).permutation(n)``; the
    first ``int(fraction * n)`` indices of that permutation are the slice (tested against ``datasets``).
    """
    import numpy as np

    permutation = np.random.default_rng(seed).permutation(n)
    return [int(i) for i in permutation[: int(fraction * n)]]
