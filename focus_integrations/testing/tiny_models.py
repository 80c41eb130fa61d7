"""Tiny random checkpoints of every supported VLM family, built offline from their config classes.

``build_checkpoint(family, path)`` writes a folder that loads like a real checkpoint of that family:
``AutoModelForImageTextToText.from_pretrained(path)`` and ``focus_integrations.processors.load_processor(path)``.
(The processors are saved without a video processor, so for the families with a video slot plain
``AutoProcessor`` fails even where torchvision exists; ``load_processor`` then uses the image-only class.)
Each one has

- random weights (``torch.manual_seed(seed)``), 45-150 k parameters, 0.2-0.6 MB on disk; no weight matrix
  is left at zero, so images always change the logits;
- a byte-level BPE tokenizer with no merges (every byte is a token) plus the family's special tokens, with
  ``config.vocab_size`` and every token id of the config (bos/eos/pad/image/vision...) taken from it;
- the family's image processor, shrunk so that an image is a handful of tokens, and a vision config that
  agrees with it;
- a simplified copy of the family's real chat template (the Qwen ones with tool calling);
- a ``generation_config`` with the template's end-of-turn token as EOS.

``tiny_checkpoint(family)`` builds once into a cache folder and returns it; concurrent builders (pytest-xdist
workers, parallel sessions) are safe because each builds in a private temporary folder and renames it into
place atomically.

``size="bench"`` (Qwen2.5-VL only) builds a ~25 M-parameter model with realistic proportions (hidden 512,
8 layers, vision depth 4, 224 px images -> 64 tokens each) for benchmarks.

This module builds, saves and caches them; the per-family recipes (configs, tokens, processor classes) are
:mod:`focus_integrations.testing.tiny_families`, the chat templates and tokenizer
:mod:`focus_integrations.testing.tiny_text`. Every public name is importable from here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from focus_integrations.testing.tiny_families import (
    FAMILIES,
    RECIPE_VERSION,
    SIZES,
    Size,
    _check_family,
)
from focus_integrations.testing.tiny_text import _build_tokenizer


def _processor_class(name: str) -> type:
    import transformers

    from focus_integrations.processors import image_only_processor_class

    # The image-only class when the stock one has a video slot: it saves under the stock class name.
    return image_only_processor_class(name) or getattr(transformers, name)


def _randomize_zero_initialized_weights(model: Any, std: float) -> None:
    # Some weights start at zero and are only ever loaded from a trained checkpoint (Gemma 3's
    # mm_input_projection_weight, InternVL's vision position embeddings). Left at zero, Gemma 3's image
    # features vanish and images could not change the output at all; give them random values too.
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim >= 2 and not parameter.any():
                parameter.normal_(0.0, std)


def family_processor(
    family: str, image_processor: Any, **processor_kwargs: Any
) -> tuple[Any, dict[str, int]]:
    """The family's processor (its offline tokenizer and chat template) around ``image_processor``, and the
    special-token ids a config of that family must use with it (image/video/vision ids, bos/eos/pad).

    For real-size architectures built from public configs (``benchmarks/gpu_suite.py``): same processor
    class and template as the tiny checkpoints, the real image geometry.
    """
    recipe = _check_family(family, "tiny")
    tokenizer = _build_tokenizer(recipe.tokens)
    tiny_config = recipe.build(tokenizer, "tiny")[0].to_dict()
    ids = {
        k: v
        for k, v in tiny_config.items()
        if k.endswith(("_token_id", "_token_index")) and isinstance(v, int)
    }
    ids |= {
        name: value
        for name, value in (
            ("bos_token_id", tokenizer.bos_token_id),
            ("eos_token_id", tokenizer.eos_token_id),
            ("pad_token_id", tokenizer.pad_token_id),
        )
        if value is not None
    }
    processor = _processor_class(recipe.processor_class)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=recipe.chat_template,
        **processor_kwargs,
    )
    return processor, ids


def build_model_and_processor(family: str, *, size: Size = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Build (in memory) the random model (eval mode) and processor of ``family``; nothing is written.

    Deterministic for a given (family, size, seed) and library versions; the global torch RNG is left as it
    was. Raises InvalidOptionError for an unknown family or size.
    """
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    recipe = _check_family(family, size)
    tokenizer = _build_tokenizer(recipe.tokens)
    config, image_processor, processor_kwargs = recipe.build(tokenizer, size)
    processor = _processor_class(recipe.processor_class)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=recipe.chat_template,
        **processor_kwargs,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config)
        _randomize_zero_initialized_weights(model, std=getattr(config, "initializer_range", 0.02))
    model.eval()
    # Explicit, so no library default (or sampling preset) sneaks in; EOS is the end-of-turn token.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model, processor


def build_checkpoint(
    family: str, path: str | os.PathLike[str], *, size: Size = "tiny", seed: int = 0
) -> Path:
    """Build a random checkpoint of ``family`` and save model, processor and generation config in ``path``.

    Returns ``path`` as a Path. See :func:`build_model_and_processor`.
    """
    model, processor = build_model_and_processor(family, size=size, seed=seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def tiny_cache_dir() -> Path:
    """Folder holding the cached checkpoints: ``$FOCUS_TINY_CACHE`` or ``~/.cache/focus-integrations/tiny``."""
    configured = os.environ.get("FOCUS_TINY_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "focus-integrations" / "tiny"


def _versions_tag() -> str:
    import transformers

    # Checkpoints saved by one transformers version may not load in an older one: keep them apart.
    return f"tf{transformers.__version__}"


_STALE_STAGING_S = 3600.0  # a build takes seconds; older staging folders are leftovers of killed processes


def _remove_stale_staging(root: Path, name: str) -> None:
    now = time.time()
    for leftover in root.glob(f".{name}-*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_STAGING_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:  # another process removed it first
            pass


def tiny_checkpoint(family: str, *, size: Size = "tiny", seed: int = 0) -> Path:
    """Path of a cached checkpoint of ``family`` (built on first use, offline).

    The folder name holds the family, size, seed, recipe version and transformers version, so a changed
    recipe never reuses a stale build. Safe when several processes race: each builds into a private
    temporary folder and renames it into place; the loser discards its copy.
    """
    _check_family(family, size)
    name = f"{family}-v{RECIPE_VERSION}"
    if size != "tiny":
        name += f"-{size}"
    if seed != 0:
        name += f"-seed{seed}"
    root = tiny_cache_dir() / _versions_tag()
    target = root / name
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(root, name)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        build_checkpoint(family, staging, size=size, seed=seed)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared
        try:
            os.rename(staging, target)  # atomic on one file system; fails if another process won
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


__all__ = [
    "FAMILIES",
    "RECIPE_VERSION",
    "SIZES",
    "build_checkpoint",
    "build_model_and_processor",
    "tiny_cache_dir",
    "tiny_checkpoint",
]
