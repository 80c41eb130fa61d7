"""Test helpers: tiny random checkpoints of every supported VLM family, built offline.

Nothing here downloads anything; the checkpoints are random (their answers are meaningless) but they load,
tokenize, process images and run forward passes exactly like real ones of their family.
"""

from __future__ import annotations

from focus_integrations.testing.tiny_models import (
    FAMILIES,
    RECIPE_VERSION,
    SIZES,
    build_checkpoint,
    build_model_and_processor,
    family_processor,
    tiny_cache_dir,
    tiny_checkpoint,
)

__all__ = [
    "FAMILIES",
    "RECIPE_VERSION",
    "SIZES",
    "build_checkpoint",
    "build_model_and_processor",
    "family_processor",
    "tiny_cache_dir",
    "tiny_checkpoint",
]
