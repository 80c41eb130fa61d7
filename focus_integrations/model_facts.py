"""What the engine reads off a loaded model: its placeholder ids, its context window, its device's cache."""

from __future__ import annotations

import torch

PLACEHOLDER_NAMES = ("image_token_id", "image_token_index", "video_token_id", "video_token_index")


def vocab_size(model: torch.nn.Module) -> int:
    """Rows of the output embedding: the ids the model can generate."""
    return int(model.get_output_embeddings().weight.shape[0])


def placeholder_token_ids(model: torch.nn.Module) -> tuple[int, ...]:
    """Image/video placeholder ids (from the config, any family's spelling); never generated."""
    ids = {getattr(model.config, name, None) for name in PLACEHOLDER_NAMES}
    vocab = vocab_size(model)
    return tuple(sorted(i for i in ids if isinstance(i, int) and 0 <= i < vocab))


def context_length(model: torch.nn.Module) -> int:
    """The text model's ``max_position_embeddings`` (unbounded when the config has none)."""
    config = model.config
    text_config = getattr(config, "text_config", None) or config
    for source in (text_config, config):
        value = getattr(source, "max_position_embeddings", None)
        if isinstance(value, int) and value > 0:
            return value
    return 1 << 30


def empty_device_cache(model: torch.nn.Module) -> None:
    """Give cached CUDA memory back (after an out-of-memory error, before a retry with smaller row groups)."""
    if next(model.parameters()).device.type == "cuda":
        torch.cuda.empty_cache()
