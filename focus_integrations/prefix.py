"""Prefill that shares the all-noise row's prefix with every row (exact, no approximation).

With one noise draw per slot, row k (image k clean, the others noise) is token for token and pixel for pixel
the same as the all-noise row 0 up to the first token of image k. So row 0 is prefilled once, and every other
row continues from a copy of its KV cache cut at the start of its first clean image, computing only the rest.
For the FOCUS rows this prefills about ``L + sum_k (L - start_k)`` tokens instead of ``(N + 1) * L``.
The rows' caches are then joined into one batch for the lockstep decode. When the all-noise row has noise
draws of its own (``SharedEncoding.reference``), the rows share only the text before the first image.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch

from focus_integrations.families import FamilySpec
from focus_integrations.logits import RowMasks
from focus_integrations.vision import SharedEncoding

_ROPE_INDEX_KEYS = ("input_ids", "mm_token_type_ids", "image_grid_thw", "attention_mask")


def can_share_prefix(
    model: torch.nn.Module, spec: FamilySpec, encoding: SharedEncoding, masks: RowMasks
) -> bool:
    """Only for rule rows that include the all-noise row, caches that can be cut, and causal image tokens."""
    from transformers.cache_utils import DynamicCache

    if not spec.prefix_sharing or not any(not any(mask) for mask in masks):
        return False
    if "token_type_ids" in encoding.text:  # bidirectional attention inside image blocks (Gemma3)
        return False
    layers = DynamicCache(config=model.config).layers
    return all(
        not getattr(layer, "is_sliding", False) and getattr(layer, "is_croppable", True) for layer in layers
    )


def _mrope_positions(model: torch.nn.Module, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    inner = getattr(model, "model", model)
    accepted = inspect.signature(inner.get_rope_index).parameters
    return inner.get_rope_index(**{k: inputs[k] for k in _ROPE_INDEX_KEYS if k in inputs and k in accepted})


def join_caches(caches: list[Any]) -> Any:
    """One cache whose batch holds the given one-row caches, in order (they must have equal lengths)."""
    joined = caches[0]
    for index, layer in enumerate(joined.layers):
        layer.keys = torch.cat([cache.layers[index].keys for cache in caches], dim=0)
        layer.values = torch.cat([cache.layers[index].values for cache in caches], dim=0)
    return joined


@torch.inference_mode()
def prefill_sharing_prefix(
    model: torch.nn.Module,
    spec: FamilySpec,
    encoding: SharedEncoding,
    masks: RowMasks,
    cache_kw: str,
    device: torch.device,
) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
    """Last-position fp32 logits of every row (rows, vocab), their joined cache, and rope offsets (mrope)."""
    from focus_integrations.decode import output_cache

    def to_device(inputs: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}

    n_slots = len(encoding.clean)
    base = to_device(encoding.inputs(((False,) * n_slots,)))
    positions, rope_deltas = _mrope_positions(model, base) if spec.mrope else (None, None)
    if positions is not None:
        base["position_ids"] = positions
    out = model(**base, use_cache=True, logits_to_keep=1)
    base_cache, base_logits = output_cache(out), out.logits[0, -1].float()
    length = encoding.length
    row_logits, row_caches = [], []
    for mask in masks:
        first_clean = next((slot for slot, clean in enumerate(mask) if clean), None)
        if first_clean is not None and encoding.reference is not None:
            first_clean = 0  # its noise differs from the reference row's from the first image on
        if first_clean is None:  # the all-noise row itself
            row_logits.append(base_logits)
            row_caches.append(base_cache)
            continue
        start = encoding.slot_starts[first_clean]
        cache = copy.deepcopy(base_cache)
        cache.crop(start - length)
        chunk = to_device(encoding.inputs((mask,), from_slot=first_clean))
        chunk |= {"attention_mask": torch.ones(1, length, dtype=torch.long, device=device), cache_kw: cache}
        if positions is not None:
            chunk["position_ids"] = positions[..., start:]
        out = model(**chunk, use_cache=True, logits_to_keep=1)
        row_logits.append(out.logits[0, -1].float())
        row_caches.append(output_cache(out))
    return torch.stack(row_logits), join_caches(row_caches), rope_deltas
