"""Vision features once per DISTINCT image: N clean + N noise encodes instead of N(N+1).

With one noise draw per slot shared by all rows, the N+1 rows contain only 2N distinct images (3N when the
all-noise reference row has its own draws, see ``rows.RowImages.reference_noise``). They are encoded once, as a
two-row (three-row) batch (all clean, all noise[, all reference noise]) of the same prompt so each image is
processed exactly as it is inside the rows; the per-slot features are then re-assembled into the rows and handed to the model as
``mm_encoder_outputs`` (transformers >= 5.18), with no ``pixel_values``. The result is bit-identical to
encoding every row's images (tested for every family).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from focus_integrations.families import FamilySpec
from focus_integrations.logits import RowMasks
from focus_integrations.rows import RowImages, encode_rows

_TEXT_KEYS = ("input_ids", "attention_mask")


def supports_shared_vision(model: torch.nn.Module) -> bool:
    return "mm_encoder_outputs" in inspect.signature(model.forward).parameters


def _image_token_id(model: torch.nn.Module) -> int:
    config = model.config
    token_id = getattr(config, "image_token_id", None)
    return int(token_id if token_id is not None else config.image_token_index)


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
    clean: list[torch.Tensor],
    noise: list[torch.Tensor],
    masks: RowMasks,
    container: str,
    slots: range,
    reference: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, ...] | torch.Tensor:
    def masked(mask: tuple[bool, ...]) -> list[torch.Tensor]:
        return reference if reference is not None and not any(mask) else noise

    per_image = [clean[j] if mask[j] else masked(mask)[j] for mask in masks for j in slots]
    return tuple(per_image) if container == "tuple" else torch.cat(per_image, dim=0)


@dataclass
class SharedEncoding:
    """Each distinct image encoded once, plus one row of text inputs: everything needed to build any row."""

    output_type: type
    container: str
    text: dict[str, torch.Tensor]  # one row: input_ids, attention_mask, mm_token_type_ids / token_type_ids
    per_image: dict[str, torch.Tensor]  # position keys, one entry per slot (image_grid_thw)
    clean: list[torch.Tensor]  # per slot: (tokens, hidden)
    noise: list[torch.Tensor]
    deepstack: list[list[list[torch.Tensor]]] | None  # per layer: [clean, noise(, reference)], per slot
    slot_starts: list[int]  # position of each slot's first image token in input_ids
    reference: list[torch.Tensor] | None = None  # the all-noise row's own noise features, when distinct

    @property
    def length(self) -> int:
        return int(self.text["input_ids"].shape[1])

    def inputs(self, masks: RowMasks, from_slot: int | None = None) -> dict[str, Any]:
        """Model inputs of the rows ``masks``; with ``from_slot``, only the tokens from that slot's first image
        token on (a continuation of a cache that holds the rest) and the features of the slots they contain."""
        n_rows = len(masks)
        slots = range(from_slot or 0, len(self.clean))
        features: dict[str, Any] = {
            "pooler_output": _rows_features(
                self.clean, self.noise, masks, self.container, slots, self.reference
            )
        }
        if self.deepstack is not None:
            features["deepstack_features"] = [
                _rows_features(layer[0], layer[1], masks, self.container, slots, (layer[2:] or [None])[0])
                for layer in self.deepstack
            ]
        mm = {"mm_encoder_outputs": {"image": self.output_type(**features)}}
        if from_slot is not None:
            return {"input_ids": self.text["input_ids"][:, self.slot_starts[from_slot] :]} | mm
        inputs: dict[str, Any] = {k: v.expand(n_rows, -1).contiguous() for k, v in self.text.items()}
        inputs.update({k: v.repeat(n_rows, *([1] * (v.ndim - 1))) for k, v in self.per_image.items()})
        return inputs | mm


def distinct_images_inputs(
    processor: Any, prompt: str, images: RowImages, *, add_special_tokens: bool, flat_images: bool = False
) -> dict[str, Any]:
    """Processor outputs of the prompt twice: once with the N clean images, once with the N noise images
    (three times when the reference row has its own noise draws).

    Each image is processed exactly as it is inside the rows; nothing has run on the model yet.
    """
    assert images.noise is not None, "shared vision needs one noise draw per slot"
    sets = [images.clean, images.noise]
    if images.reference_noise is not None:
        sets.append(images.reference_noise)
    return encode_rows(
        processor,
        prompt,
        sets,
        add_special_tokens=add_special_tokens,
        replacement_offsets=True,
        flat_images=flat_images,
    )


@torch.inference_mode()
def encode_shared(
    model: torch.nn.Module, spec: FamilySpec, tokenizer: Any, encoded: dict[str, Any]
) -> SharedEncoding:
    """Run the vision tower once over the 2N (3N) distinct images of ``distinct_images_inputs``."""
    n_sets = len(encoded["text_replacement_offsets"])
    n_slots = len(encoded["text_replacement_offsets"][0])
    image_token_id = _image_token_id(model)
    token = tokenizer.convert_ids_to_tokens(image_token_id)
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
    deepstack = None
    if spec.deepstack and getattr(output, "deepstack_features", None) is not None:
        layers = [_per_slot(_flatten(layer), counts) for layer in output.deepstack_features]
        deepstack = [[layer[k * n_slots : (k + 1) * n_slots] for k in range(n_sets)] for layer in layers]

    seq_len = encoded["input_ids"].shape[1]
    text = {
        k: v[:1]
        for k, v in encoded.items()
        if isinstance(v, torch.Tensor) and v.shape[:2] == (n_sets, seq_len)
    }
    image_positions = (text["input_ids"][0] == image_token_id).nonzero().flatten().tolist()
    firsts = [sum(counts[:slot]) for slot in range(n_slots)]
    return SharedEncoding(
        output_type=type(output),
        container=spec.features_container,
        text=text,
        per_image={k: encoded[k][:n_slots] for k in spec.position_image_keys if k in encoded},
        clean=slots[:n_slots],
        noise=slots[n_slots : 2 * n_slots],
        deepstack=deepstack,
        slot_starts=[image_positions[i] for i in firsts],
        reference=slots[2 * n_slots :] if n_sets == 3 else None,
    )
