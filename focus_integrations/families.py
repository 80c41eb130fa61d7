"""Per-family quirks, in ONE table keyed by ``config.model_type``.

The engine is generic; a family only needs an entry here when it departs from the plain transformers
contract. Processor quirks (loading without torchvision) live in ``processors.py``'s table, by processor class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FamilySpec:
    """How one model family departs from the generic path.

    mrope: text positions are 3D (temporal, height, width) and computed from the image grid at prefill; a
        cached step must get explicit ``position_ids = past_length + rope_delta`` (Qwen2/2.5/3-VL).
    features_container: how ``get_image_features(...).pooler_output`` holds per-image features: "tuple" (one
        tensor per image) or "tensor" (one tensor, images along dim 0).
    position_image_keys: per-image processor outputs the language model still needs once image features are
        given precomputed (Qwen computes its 3D positions from ``image_grid_thw``).
    deepstack: the vision tower also returns per-layer features that must follow the images (Qwen3-VL).
    prefix_sharing: rows may continue from the all-noise row's cache (see prefix.py); on unless a family
        is known to break it (the generic checks there already exclude sliding-window caches and
        bidirectional image attention).
    flat_list_anyres: the processor tiles an image at high resolution (anyres) only when it is a sample of
        its own: a FLAT image list makes every image one, a nested multi-image sample gets one base-resolution
        view per image (LLaVA-OneVision's ``batch_num_images``). The option ``multi_image_anyres`` then hands
        the processor a flat list; families without this split get the same inputs either way.
    """

    name: str
    mrope: bool = False
    features_container: str = "tuple"
    position_image_keys: tuple[str, ...] = ()
    deepstack: bool = False
    prefix_sharing: bool = True
    flat_list_anyres: bool = False


GENERIC = FamilySpec("generic")

FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        FamilySpec("qwen2_vl", mrope=True, position_image_keys=("image_grid_thw",)),
        FamilySpec("qwen2_5_vl", mrope=True, position_image_keys=("image_grid_thw",)),
        FamilySpec("qwen3_vl", mrope=True, position_image_keys=("image_grid_thw",), deepstack=True),
        FamilySpec("qwen3_vl_moe", mrope=True, position_image_keys=("image_grid_thw",), deepstack=True),
        FamilySpec("llava_onevision", flat_list_anyres=True),
        FamilySpec("llava"),
        FamilySpec("internvl", features_container="tensor"),
        FamilySpec("idefics3"),
        FamilySpec("smolvlm"),
        FamilySpec("gemma3", features_container="tensor"),
    )
}


def family_of(model: torch.nn.Module) -> FamilySpec:
    model_type = getattr(model.config, "model_type", "")
    return FAMILIES.get(model_type, GENERIC)


def rope_deltas_of(model: torch.nn.Module) -> torch.Tensor | None:
    """The rope offsets an mrope model stored during its last prefill (read right after it)."""
    inner = getattr(model, "model", model)
    return getattr(inner, "rope_deltas", None)


def clear_rope_deltas(model: torch.nn.Module) -> None:
    inner = getattr(model, "model", model)
    if getattr(inner, "rope_deltas", None) is not None:
        inner.rope_deltas = None


def step_position_ids(
    spec: FamilySpec,
    past_length: int,
    n_new: int,
    rope_deltas: torch.Tensor | None,
    batch: int,
    device: torch.device,
) -> torch.Tensor | None:
    """Explicit positions for ``n_new`` tokens after ``past_length`` cached ones (None: the model infers them)."""
    if not spec.mrope:
        return None
    positions = torch.arange(past_length, past_length + n_new, device=device).view(1, -1).expand(batch, -1)
    if rope_deltas is not None:
        positions = positions + rope_deltas.to(device).view(-1, 1)
    return positions.unsqueeze(0).expand(3, batch, n_new)


def row_position_ids(
    spec: FamilySpec, lengths: torch.Tensor, rope_deltas: torch.Tensor | None
) -> torch.Tensor:
    """Positions of one new token per row when rows of different lengths share a left-padded cache.

    Each row's position is its own count of real tokens (what it would be alone), plus its rope offset for
    3-D (mrope) positions; shape ``(rows, 1)``, or ``(3, rows, 1)`` for mrope families.
    """
    positions = lengths.view(-1, 1)
    if rope_deltas is not None:
        positions = positions + rope_deltas.view(-1, 1)
    return positions.unsqueeze(0).expand(3, -1, 1) if spec.mrope else positions
