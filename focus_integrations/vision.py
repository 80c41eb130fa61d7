"""Vision features once per DISTINCT image: N clean + N noise encodes instead of N(N+1).

With one noise draw per slot shared by all rows, the N+1 rows contain only 2N distinct images. They are
encoded once, as a two-row batch (all clean, all noise) of the same prompt so each image is processed exactly
as it is inside the rows; the per-slot features are then re-assembled into the rows and handed to the model as
``mm_encoder_outputs`` (transformers >= 5.18), with no ``pixel_values``. The result is bit-identical to
encoding every row's images (tested for every family).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from focus_integrations.families import FamilySpec
from focus_integrations.logits import RowMasks
from focus_integrations.rows import RowImages

_TEXT_KEYS = ("input_ids", "attention_mask")


def supports_shared_vision(model: torch.nn.Module) -> bool:
    return "mm_encoder_outputs" in inspect.signature(model.forward).parameters


def _image_token(model: torch.nn.Module, tokenizer: Any) -> str:
    config = model.config
    token_id = getattr(config, "image_token_id", None)
    if token_id is None:
        token_id = getattr(config, "image_token_index", None)
    return tokenizer.convert_ids_to_tokens(int(token_id))


def _flatten(features: Any) -> torch.Tensor:
    """Any ``pooler_output`` layout (per image, per row, per tile) -> (tokens, hidden), in prompt order."""
    if isinstance(features, (list, tuple)):
        features = torch.cat([f.reshape(-1, f.shape[-1]) for f in features], dim=0)
    return features.reshape(-1, features.shape[-1])


def _per_slot(flat: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
    if sum(counts) != flat.shape[0]:
        raise RuntimeError(
            f"image features ({flat.shape[0]} tokens) do not match the placeholders ({sum(counts)})"
        )
    return list(torch.split(flat, counts, dim=0))


def _rows_features(
    clean: list[torch.Tensor], noise: list[torch.Tensor], masks: RowMasks, container: str
) -> tuple[torch.Tensor, ...] | torch.Tensor:
    per_image = [clean[j] if keep else noise[j] for mask in masks for j, keep in enumerate(mask)]
    return tuple(per_image) if container == "tuple" else torch.cat(per_image, dim=0)


@torch.inference_mode()
def encode_rows_shared(
    model: torch.nn.Module,
    spec: FamilySpec,
    processor: Any,
    prompt: str,
    images: RowImages,
    masks: RowMasks,
    *,
    add_special_tokens: bool,
    chunk_size: int,
) -> list[dict[str, Any]]:
    """Model inputs for each group of rows, with precomputed image features instead of pixels."""
    assert images.noise is not None, "shared vision needs one noise draw per slot"
    n_slots = len(images.clean)
    encoded = dict(
        processor(
            text=[prompt, prompt],
            images=[list(images.clean), list(images.noise)],
            return_tensors="pt",
            add_special_tokens=add_special_tokens,
            return_text_replacement_offsets=True,
        )
    )
    token = _image_token(model, getattr(processor, "tokenizer", processor))
    counts = [item["replacement"].count(token) for row in encoded["text_replacement_offsets"] for item in row]

    inner = getattr(model, "model", model)
    accepted = inspect.signature(inner.get_image_features).parameters
    device = next(model.parameters()).device
    vision_kwargs = {
        k: v.to(device) if isinstance(v, torch.Tensor) else v
        for k, v in encoded.items()
        if k in accepted and k not in _TEXT_KEYS
    }
    output = inner.get_image_features(**vision_kwargs, return_dict=True)
    slots = _per_slot(_flatten(output.pooler_output), counts)
    clean, noise = slots[:n_slots], slots[n_slots:]
    deepstack = None
    if spec.deepstack and getattr(output, "deepstack_features", None) is not None:
        deepstack = [_per_slot(_flatten(layer), counts) for layer in output.deepstack_features]

    seq_len = encoded["input_ids"].shape[1]
    per_row = {
        k: v[:1] for k, v in encoded.items() if isinstance(v, torch.Tensor) and v.shape[:2] == (2, seq_len)
    }
    per_image = {k: encoded[k][:n_slots] for k in spec.position_image_keys if k in encoded}

    groups = []
    for start in range(0, len(masks), chunk_size):
        group_masks = masks[start : start + chunk_size]
        n_rows = len(group_masks)
        features: dict[str, Any] = {
            "pooler_output": _rows_features(clean, noise, group_masks, spec.features_container)
        }
        if deepstack is not None:
            features["deepstack_features"] = [
                _rows_features(c, n, group_masks, spec.features_container)
                for c, n in ((layer[:n_slots], layer[n_slots:]) for layer in deepstack)
            ]
        inputs: dict[str, Any] = {k: v.expand(n_rows, -1).contiguous() for k, v in per_row.items()}
        inputs.update({k: v.repeat(n_rows, *([1] * (v.ndim - 1))) for k, v in per_image.items()})
        inputs["mm_encoder_outputs"] = {"image": type(output)(**features)}
        groups.append(inputs)
    return groups
