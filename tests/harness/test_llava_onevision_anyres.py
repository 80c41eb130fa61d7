"""The reference's LLaVA-OneVision image handling (benchmarks-facts trap 14), on the tiny LLaVA-OV checkpoint.

The authors' baseline calls ``processor(images=[a, b], text=prompt)``: a FLAT list, so the processor tiles every
image (anyres). Their FOCUS rows call ``processor(images=[[...], ...], text=[...])``: nested lists, one
base-resolution view per image. ``multi_image_anyres=True`` must give exactly the flat call's inputs, and the
engine's default exactly the nested call's; both are checked against a slow construction (one processor call
per row as the authors make it, one uncached forward per row and step, the FOCUS sum written out).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine.reference import focus_by_hand, render, uncached_last_logits
from PIL import Image

from focus_integrations.decoder import FocusDecoder
from focus_integrations.noise import make_noise

PROMPT = "Which image shows the red shape?"
STEPS = 4


@pytest.fixture(scope="module")
def decoder(tiny_checkpoint) -> FocusDecoder:
    return FocusDecoder.from_pretrained(str(tiny_checkpoint("llava_onevision")))


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    # Different aspect ratios: anyres picks a different tile grid for each.
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in ((40, 24), (24, 48))]


def _slow_greedy(
    decoder: FocusDecoder, rows: list[list[Image.Image]], *, flat: bool, alpha: float
) -> list[int]:
    """Greedy decode of the rows, the authors' way: one processor call per row (``images=row`` flat, or
    ``images=[row]`` nested), full uncached forwards, FOCUS combined by hand (one row: plain argmax)."""
    text, add_special = render(decoder.processor, rows[0], PROMPT)
    inputs = [
        dict(
            decoder.processor(
                text=text if flat else [text],
                images=list(row) if flat else [list(row)],
                return_tensors="pt",
                add_special_tokens=add_special,
            )
        )
        for row in rows
    ]
    generated: list[int] = []
    for _ in range(STEPS):
        z = [uncached_last_logits(decoder.model, row, generated) for row in inputs]
        combined = z[0].clone() if len(z) == 1 else focus_by_hand(z, alpha)
        for token in decoder.banned_token_ids:
            combined[token] = float("-inf")
        generated.append(int(torch.argmax(combined)))
        if generated[-1] in decoder.eos_token_ids:
            break
    return generated


def _prompt_tokens(decoder: FocusDecoder, images: list[Image.Image], *, flat: bool) -> int:
    text, add_special = render(decoder.processor, images, PROMPT)
    nested = decoder.processor(
        text=text if flat else [text], images=images if flat else [images], add_special_tokens=add_special
    )
    return len(nested["input_ids"][0])


GREEDY = {"do_sample": False, "max_new_tokens": STEPS}


def test_multi_image_anyres_gives_vanilla_the_flat_list_inputs_of_the_reference_baseline(decoder):
    images = _images()
    flat_length, nested_length = (_prompt_tokens(decoder, images, flat=f) for f in (True, False))
    assert flat_length > nested_length  # the trap is real on this checkpoint: tiles add tokens

    tiled = decoder.generate(images, PROMPT, mode="vanilla", multi_image_anyres=True, **GREEDY)
    assert tiled.usage.input_tokens == flat_length
    assert tiled.token_ids == _slow_greedy(decoder, [images], flat=True, alpha=0.0)

    default = decoder.generate(images, PROMPT, mode="vanilla", **GREEDY)
    assert default.usage.input_tokens == nested_length
    assert default.token_ids == _slow_greedy(decoder, [images], flat=False, alpha=0.0)


def _gray_rows(images: list[Image.Image]) -> list[list[Image.Image]]:
    """FOCUS rows with gray noise (no random draw: both constructions see the same pixels)."""
    rng = np.random.default_rng(0)
    gray = [make_noise(image, "gray", 1.0, rng) for image in images]
    return [gray] + [[img if j == k else gray[j] for j, img in enumerate(images)] for k in range(len(images))]


@pytest.mark.parametrize("shared_vision", [True, False])
def test_multi_image_anyres_tiles_every_focus_row_like_a_flat_processor_call(decoder, shared_vision):
    images, alpha = _images(), 0.5
    options = dict(GREEDY, alpha=alpha, noise="gray", shared_vision=shared_vision)
    tiled = decoder.generate(images, PROMPT, mode="focus", multi_image_anyres=True, **options)
    assert tiled.usage.input_tokens == _prompt_tokens(decoder, images, flat=True)
    assert tiled.token_ids == _slow_greedy(decoder, _gray_rows(images), flat=True, alpha=alpha)
    # The default is the authors' FOCUS rows: nested lists, base resolution.
    default = decoder.generate(images, PROMPT, mode="focus", **options)
    assert default.token_ids == _slow_greedy(decoder, _gray_rows(images), flat=False, alpha=alpha)


def test_one_image_is_tiled_either_way_and_other_families_are_unaffected(decoder, tiny_checkpoint):
    image = _images()[:1]
    on = decoder.generate(image, PROMPT, mode="vanilla", multi_image_anyres=True, **GREEDY)
    off = decoder.generate(image, PROMPT, mode="vanilla", **GREEDY)
    assert (on.usage.input_tokens, on.token_ids) == (off.usage.input_tokens, off.token_ids)

    # Qwen2.5-VL's processor treats a flat and a nested list alike, so the option has nothing to change there.
    qwen = FocusDecoder.from_pretrained(str(tiny_checkpoint("qwen2_5_vl")))
    images = _images()
    text, _ = render(qwen.processor, images, PROMPT)
    flat, nested = qwen.processor(text=text, images=images), qwen.processor(text=[text], images=[images])
    assert flat["input_ids"] == nested["input_ids"]
    assert np.array_equal(np.asarray(flat["pixel_values"]), np.asarray(nested["pixel_values"]))
    on = qwen.generate(images, PROMPT, mode="vanilla", multi_image_anyres=True, **GREEDY)
    off = qwen.generate(images, PROMPT, mode="vanilla", **GREEDY)
    assert (on.usage.input_tokens, on.token_ids) == (off.usage.input_tokens, off.token_ids)


def test_count_tokens_counts_the_prompt_a_request_with_the_same_image_handling_sees(
    decoder: FocusDecoder,
) -> None:
    # count_tokens is how callers check a prompt against the context window before sending it: with anyres
    # tiles it must count the tiles (the flat call's prompt is longer), as the request itself does.
    images = _images()
    messages = [
        {
            "role": "user",
            "content": [*({"type": "image", "image": im} for im in images), {"type": "text", "text": PROMPT}],
        }
    ]
    for flat in (False, True):
        out = decoder.generate(messages=messages, mode="vanilla", max_new_tokens=1, multi_image_anyres=flat)
        assert decoder.count_tokens(messages, multi_image_anyres=flat) == out.usage.input_tokens
    assert decoder.count_tokens(messages, multi_image_anyres=True) > decoder.count_tokens(messages)
