"""Build-time dependencies (easy-vqa: the default model's training data) kept outside the runtime environment.

easy-vqa's wheel also installs a top-level ``test`` package that shadows the standard library's, so ``make
test`` installs it into a separate folder named by ``$FOCUS_BUILD_DEPS``; only the code that builds data or
trains sees it, by appending that folder to its path.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def build_deps_dir() -> str:
    return os.environ.get("FOCUS_BUILD_DEPS", "")


def easy_vqa_available() -> bool:
    folder = build_deps_dir()
    return importlib.util.find_spec("easy_vqa") is not None or bool(
        folder and (Path(folder) / "easy_vqa").is_dir()
    )


def with_build_deps(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a subprocess that may import the build-time dependencies (appended: stdlib keeps precedence)."""
    folder = build_deps_dir()
    if not folder:
        return env
    return env | {"PYTHONPATH": os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), folder) if p)}
