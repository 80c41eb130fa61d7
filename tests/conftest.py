"""Shared test set-up: offline Hugging Face, tiny checkpoints of every family."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub/transformers: tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Tiny models run 10x faster on one intra-op thread than on two (thread hand-off dominates such small
# matmuls), and subprocesses (CLI, servers) inherit it. A run can still ask for more.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

from focus_integrations.testing import FAMILIES  # noqa: E402

# Every supported model family; use as `@pytest.mark.parametrize("family", ALL_FAMILIES)` or via the
# `family` fixture below.
ALL_FAMILIES: tuple[str, ...] = FAMILIES


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Callable[..., Path]:
    """Factory: ``tiny_checkpoint("qwen2_5_vl") -> Path`` of a cached tiny random checkpoint.

    Built once per machine (``$FOCUS_TINY_CACHE`` or ``~/.cache/focus-integrations/tiny``, keyed by recipe
    and transformers version), about 1 s per family on first use.
    """
    from focus_integrations.testing import tiny_checkpoint as build_or_get

    return build_or_get


@pytest.fixture(params=ALL_FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    """Each model family in turn."""
    return request.param


@pytest.fixture
def easy_vqa(monkeypatch: pytest.MonkeyPatch):
    """The easy_vqa module (installed, or from $FOCUS_BUILD_DEPS appended to sys.path for this test only)."""
    import sys

    from focus_integrations.testing.build_deps import build_deps_dir, easy_vqa_available

    if not easy_vqa_available():
        pytest.skip("easy-vqa (a build-time dependency) is not installed; `make test` installs it")
    if build_deps_dir():
        monkeypatch.setattr(sys, "path", [*sys.path, build_deps_dir()])
    import easy_vqa as module

    return module
