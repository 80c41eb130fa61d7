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
from focus_integrations.noise import make_noise
from focus_integrations.options import DecodingOptions


@dataclass
class RowImages:
    """Images of every row (``rows[r][j]``), plus the distinct clean and noise images they are made of."""

    rows: list[list[Image.Image]]
    clean: list[Image.Image]
    noise: list[Image.Image] | None  # one draw per slot shared by all rows; None with fresh noise per row


def mask_images(
    images: Sequence[Image.Image], masks: RowMasks, options: DecodingOptions, rng: np.random.Generator
) -> RowImages:
    """Build each row's images. Noise is drawn per slot once (default) or fresh per row and slot."""
    needs_noise = any(not clean for mask in masks for clean in mask)
    if not needs_noise:
        return RowImages([list(images) for _ in masks], list(images), None)

    def noise_for(slot: int) -> Image.Image:
        return make_noise(images[slot], options.noise, options.noise_scale, rng)

    if options.fresh_noise:
        rows = [
            [img if clean else noise_for(j) for j, (img, clean) in enumerate(zip(images, mask))]
            for mask in masks
        ]
        return RowImages(rows, list(images), None)
    shared = [noise_for(j) for j in range(len(images))]
    rows = [
        [img if clean else shared[j] for j, (img, clean) in enumerate(zip(images, mask))] for mask in masks
    ]
    return RowImages(rows, list(images), shared)


def encode_rows(
    processor: Any,
    prompt: str,
    row_images: Sequence[Sequence[Image.Image]],
    *,
    add_special_tokens: bool,
    replacement_offsets: bool = False,
) -> dict[str, Any]:
    """Processor outputs for ``len(row_images)`` copies of ``prompt``, one image list per row.

    ``replacement_offsets``: also return where each image's placeholder expanded (to split features per slot).
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
        kwargs["images"] = [list(images) for images in row_images]
    return dict(processor(**kwargs))
