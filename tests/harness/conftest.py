"""Fixture datasets (synthetic, in each benchmark's real on-disk layout), built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("datasets")

from focus_integrations.testing import benchmark_data  # noqa: E402


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory: pytest.TempPathFactory):
    """``bench_data("winoground") -> Path`` of that benchmark's fixture folder (built on first use)."""
    root = tmp_path_factory.mktemp("bench")
    os.environ.setdefault("HF_DATASETS_CACHE", str(root / "hf-cache"))
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import datasets

    datasets.disable_progress_bars()
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = getattr(benchmark_data, name)(root / name)
        return built[name]

    return get
