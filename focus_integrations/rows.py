"""The masked rows of one request: which images each row sees, and the processor inputs for them.

Every row holds the same prompt; row r shows image j clean where ``rule.row_masks[r][j]`` is True, and a
same-size noise image elsewhere. Because noise keeps each image's size, all rows tokenise to identical
``input_ids`` and form one batch with no padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from focus_integrations.logits import RowMasks
from focus_integrations.noise import SCALED_MODES, make_noise
from focus_integrations.options import DecodingOptions


@dataclass
class RowImages:
    """Images of every row (``rows[r][j]``), plus the distinct clean and noise images they are made of."""

    rows: list[list[Image.Image]]
    clean: list[Image.Image]
    noise: list[Image.Image] | None  # one draw per slot shared by all rows; None with fresh noise per row
    # The all-noise reference row's own draws, when they differ from ``noise`` (FOCUS with noise_scale != 1
    # in a mode the scale changes: the reference row stays at scale 1, as in the reference code).
    reference_noise: list[Image.Image] | None = None


def reference_noise_scale(options: DecodingOptions) -> float:
    """The scale of the all-noise row: 1 for FOCUS (the reference code's), ``noise_scale`` otherwise (VCD)."""
    return 1.0 if options.mode == "focus" else float(options.noise_scale)


def mask_images(
    images: Sequence[Image.Image], masks: RowMasks, options: DecodingOptions, rng: np.random.Generator
) -> RowImages:
    """Build each row's images. Noise is drawn per slot once (default) or fresh per row and slot.

    Rows with a clean image get noise at ``noise_scale``; the all-noise row of FOCUS gets scale 1. Draw
    order: row by row, slot by slot (fresh noise, as the reference code); otherwise the reference row's
    draws first when they are distinct, then one draw per slot for the other rows.
    """
    needs_noise = any(not clean for mask in masks for clean in mask)
    if not needs_noise:
        return RowImages([list(images) for _ in masks], list(images), None)
    row_scale = float(options.noise_scale)
    reference_scale = reference_noise_scale(options)

    def noise_for(slot: int, scale: float) -> Image.Image:
        return make_noise(images[slot], options.noise, scale, rng, options.noise_severity)

    def scale_of(mask: tuple[bool, ...]) -> float:
        return reference_scale if len(masks) > 1 and not any(mask) else row_scale

    if options.fresh_noise:
        rows = [
            [
                img if clean else noise_for(j, scale_of(mask))
                for j, (img, clean) in enumerate(zip(images, mask))
            ]
            for mask in masks
        ]
        return RowImages(rows, list(images), None)
    distinct = reference_scale != row_scale and options.noise in SCALED_MODES and len(masks) > 1
    reference = [noise_for(j, reference_scale) for j in range(len(images))] if distinct else None
    shared = [noise_for(j, row_scale) for j in range(len(images))]
    rows = []
    for mask in masks:
        noise = reference if reference is not None and not any(mask) else shared
        rows.append([img if clean else noise[j] for j, (img, clean) in enumerate(zip(images, mask))])
    return RowImages(rows, list(images), shared, reference)


def encode_rows(
    processor: Any,
    prompt: str,
    row_images: Sequence[Sequence[Image.Image]],
    *,
    add_special_tokens: bool,
    replacement_offsets: bool = False,
    flat_images: bool = False,
) -> dict[str, Any]:
    """Processor outputs for ``len(row_images)`` copies of ``prompt``, one image list per row.

    ``replacement_offsets``: also return where each image's placeholder expanded (to split features per slot).
    ``flat_images``: hand the processor one flat list of every row's images, in order (each image a sample of
    its own: LLaVA-OneVision tiles each, see ``families.FamilySpec.flat_list_anyres``).
    """
    n_rows = len(row_images)
    kwargs: dict[str, Any] = {
        "text": [prompt] * n_rows,
        "return_tensors": "pt",
        "add_special_tokens": add_special_tokens,
    }
    if replacement_offsets:
        kwargs["return_text_replacement_offsets"] = True
    if row_images and row_images[0]:
        if flat_images:
            kwargs["images"] = [image for images in row_images for image in images]
        else:
            kwargs["images"] = [list(images) for images in row_images]
    return dict(processor(**kwargs))
