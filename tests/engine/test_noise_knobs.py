"""The reference code's noise knobs (severity; scale on rows 1..N only) and bounded-memory noise."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image

import focus_integrations.noise as noise_module
from focus_integrations import FocusDecoder
from focus_integrations.noise import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NOISE_MODES,
    SHOT_PHOTONS,
    make_noise,
    noise_array,
)
from focus_integrations.options import DecodingOptions
from focus_integrations.rows import mask_images
from focus_integrations.testing.tiny_models import FAMILIES, tiny_checkpoint

from .reference import reference_focus_greedy

PROMPT = "Which image shows the red shape?"


def _picture(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("mode", sorted(NOISE_MODES))
def test_banded_noise_is_bit_for_bit_the_unbanded_computation(mode: str, monkeypatch) -> None:
    monkeypatch.setattr(noise_module, "BAND_VALUES", 100)  # many bands, odd width: every band boundary case
    image = _picture(13, 37, seed=1)
    for severity in (1, 3, 5):
        for scale in (1.0, 0.3):
            banded_rng, whole_rng = np.random.default_rng(4), np.random.default_rng(4)
            banded = np.asarray(make_noise(image, mode, scale, banded_rng, severity))
            whole = noise_array(np.asarray(image), mode, scale, whole_rng, severity)
            assert np.array_equal(banded, whole), (mode, severity, scale)
            assert banded_rng.random() == whole_rng.random()  # the generator is left in the same state


def test_severity_uses_the_reference_constants() -> None:
    image = _picture(9, 7)
    x = np.asarray(image, dtype=np.float64) / 255.0
    norm = np.clip((x - IMAGENET_MEAN) / IMAGENET_STD, 0, 1)
    photons = SHOT_PHOTONS[3 - 1]
    assert photons == 12
    expected = (np.clip(np.random.default_rng(3).poisson(norm * photons) / photons, 0, 1) * 255).astype(
        np.uint8
    )
    assert np.array_equal(np.asarray(make_noise(image, "shot", 1.0, np.random.default_rng(3), 3)), expected)
    assert DecodingOptions.resolve().noise_severity == 3  # the reference's evaluation default
    one = np.asarray(make_noise(image, "speckle", 1.0, np.random.default_rng(3), 1))
    five = np.asarray(make_noise(image, "speckle", 1.0, np.random.default_rng(3), 5))
    assert not np.array_equal(one, five)


@pytest.mark.parametrize("mode", ["imagenet+uniform", "impulse"])
def test_noise_memory_stays_bounded_on_a_large_image(mode: str) -> None:
    image = _picture(2000, 1500)  # 9 M values: one float64 copy alone is 72 MB
    tracemalloc.start()
    try:
        make_noise(image, mode, 1.0, np.random.default_rng(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 48 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_focus_scale_applies_to_rows_and_the_reference_row_stays_at_one() -> None:
    images = [_picture(10, 8, 1), _picture(12, 6, 2)]
    options = DecodingOptions.resolve(noise_scale=0.4)
    masks = ((False, False), (True, False), (False, True))
    built = mask_images(images, masks, options, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    reference = [make_noise(img, options.noise, 1.0, rng) for img in images]  # drawn first
    rows = [make_noise(img, options.noise, 0.4, rng) for img in images]
    assert [np.asarray(i).tolist() for i in built.rows[0]] == [np.asarray(i).tolist() for i in reference]
    assert np.array_equal(np.asarray(built.rows[1][1]), np.asarray(rows[1]))
    assert np.array_equal(np.asarray(built.rows[2][0]), np.asarray(rows[0]))
    # VCD keeps its own scale on its noised row; modes the scale does not change need no second draw.
    vcd = DecodingOptions.resolve(mode="vcd")
    assert (
        mask_images(images, ((True, True), (False, False)), vcd, np.random.default_rng(5)).reference_noise
        is None
    )
    gray = DecodingOptions.resolve(noise="gray", noise_scale=0.4)
    assert mask_images(images, masks, gray, np.random.default_rng(5)).reference_noise is None


@pytest.fixture(scope="module", params=FAMILIES)
def decoder(request) -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint(request.param), dtype="float32")


def test_scaled_noise_keeps_shared_vision_and_prefix_sharing_exact(decoder: FocusDecoder) -> None:
    images = [_picture(40, 30, 1), _picture(33, 47, 2), _picture(29, 41, 3)]
    kwargs = dict(mode="focus", alpha=0.3, seed=7, max_new_tokens=4, noise_scale=0.5, repetition_penalty=1.0)
    fast = decoder.generate(images=images, prompt=PROMPT, **kwargs)
    per_row = decoder.generate(images=images, prompt=PROMPT, shared_vision=False, **kwargs)
    expected, _ = reference_focus_greedy(
        decoder.model,
        decoder.processor,
        images,
        PROMPT,
        alpha=0.3,
        seed=7,
        max_new_tokens=4,
        banned=decoder.banned_token_ids,
        scale=0.5,
        reference_scale=1.0,
    )
    assert fast.token_ids == per_row.token_ids == expected[: len(fast.token_ids)]


@pytest.mark.slow
def test_an_8000_pixel_square_image_decodes_in_focus_mode() -> None:
    big = Image.new("RGB", (8000, 8000), (200, 30, 30))  # 64 megapixels, the documented limit
    decoder = FocusDecoder.from_pretrained(tiny_checkpoint("llava"))
    out = decoder.generate(images=[big, _picture(40, 30)], prompt=PROMPT, max_new_tokens=1, seed=0)
    assert out.settings["rule"] == "focus" and out.usage.output_tokens == 1
