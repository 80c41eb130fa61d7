"""The small pieces on their own: noise modes, logits rules, token choice, incremental text with stops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from focus_integrations.logits import (
    TokenChooser,
    build_rule,
    focus_combine,
    plausibility_cutoff,
    vcd_combine,
)
from focus_integrations.noise import IMAGENET_MEAN, IMAGENET_STD, NOISE_MODES, make_noise
from focus_integrations.options import DecodingOptions
from focus_integrations.text import IncrementalDetokenizer


def test_imagenet_uniform_matches_the_reference_formula() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8))
    for scale in (1.0, 0.4):
        got = np.asarray(make_noise(image, "imagenet+uniform", scale, np.random.default_rng(5)))
        x = np.asarray(image, dtype=np.float64) / 255.0
        u = np.random.default_rng(5).uniform(0.0, 1.0, size=x.shape)
        norm = (x - IMAGENET_MEAN) / IMAGENET_STD
        expected = (
            np.clip(((1 - scale) * norm + scale * u) * IMAGENET_STD + IMAGENET_MEAN, 0, 1) * 255
        ).astype(np.uint8)
        assert np.array_equal(got, expected)


def test_scale_one_noise_ignores_the_image() -> None:
    a, b = Image.new("RGB", (8, 6), (255, 0, 0)), Image.new("L", (8, 6), 3)
    same = [np.asarray(make_noise(img, "imagenet+uniform", 1.0, np.random.default_rng(2))) for img in (a, b)]
    assert np.array_equal(*same)


@pytest.mark.parametrize("mode", sorted(NOISE_MODES))
def test_every_noise_mode_keeps_size_and_is_seeded(mode: str) -> None:
    image = Image.new("RGBA", (13, 5), (10, 200, 30, 128))
    first = make_noise(image, mode, 1.0, np.random.default_rng(9))
    again = make_noise(image, mode, 1.0, np.random.default_rng(9))
    assert first.size == image.size and first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(again))


def test_constant_modes() -> None:
    image = Image.new("RGB", (4, 4))
    assert np.asarray(make_noise(image, "black")).max() == 0
    assert np.asarray(make_noise(image, "white")).min() == 255
    assert set(np.asarray(make_noise(image, "gray")).ravel()) == {127}


def test_focus_rule_is_a_sum_minus_alpha_n_reference() -> None:
    z = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.0, 1.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    alpha = 0.25
    expected = z[1] + z[2] + z[3] - alpha * 3 * z[0]
    assert torch.allclose(focus_combine(z, alpha), expected)
    rule = build_rule(DecodingOptions.resolve(alpha=alpha), 3)
    assert rule.row_masks == (
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (False, False, True),
    )
    assert torch.allclose(rule.combine(z), expected)


def test_vcd_rule_and_plausibility() -> None:
    z = torch.tensor([[2.0, 1.0, -3.0], [0.0, 1.5, -3.0]])
    assert torch.allclose(vcd_combine(z, 1.0), 2 * z[0] - z[1])
    cut = plausibility_cutoff(torch.zeros(3), torch.tensor([0.0, -0.1, -10.0]), beta=0.1)
    assert torch.isinf(cut[2]) and not torch.isinf(cut[:2]).any()
    rule = build_rule(DecodingOptions.resolve(mode="vcd"), 2)
    assert rule.row_masks == ((True, True), (False, False)) and rule.plausibility_beta == 0.1


def test_bans_act_after_the_contrast_without_nan() -> None:
    z = torch.tensor([[0.0, 1.0, 2.0], [1.0, 3.0, 0.0], [2.0, 0.0, 1.0]])
    rule = build_rule(DecodingOptions.resolve(alpha=1.0), 2, banned_token_ids=(1,))
    combined = rule.combine(z)
    assert torch.isinf(combined[1]) and not torch.isnan(combined).any()
    chooser = TokenChooser(DecodingOptions.resolve(do_sample=True, top_k=1), torch.Generator().manual_seed(0))
    assert chooser(combined, torch.tensor([5])) == int(torch.argmax(combined))


def test_greedy_and_sampling_choice() -> None:
    logits = torch.tensor([0.0, 5.0, 1.0])
    assert TokenChooser(DecodingOptions.resolve())(logits, torch.tensor([0])) == 1
    draws = [
        TokenChooser(
            DecodingOptions.resolve(do_sample=True, temperature=50.0), torch.Generator().manual_seed(s)
        )(logits, torch.tensor([0]))
        for s in range(40)
    ]
    assert len(set(draws)) > 1  # a hot temperature really samples


class _CharTokenizer:
    """One character per token; ids 0..255 are bytes of latin-1 text; id 256 is a special token."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids if i != 256)


def _feed(text: str, stop=()) -> tuple[list[str], IncrementalDetokenizer]:
    detok = IncrementalDetokenizer(_CharTokenizer(), stop)
    deltas = []
    for ch in text:
        deltas.append(detok.push(ord(ch)))
        if detok.stopped:
            break
    deltas.append(detok.flush())
    return [d for d in deltas if d], detok


def test_stop_string_is_cut_and_never_streamed() -> None:
    deltas, detok = _feed("Answer: A\nObservation: junk", stop=["\nObservation:"])
    assert "".join(deltas) == "Answer: A" == detok.text
    assert detok.stop_sequence == "\nObservation:"


def test_partial_stop_prefix_is_held_back_then_released() -> None:
    detok = IncrementalDetokenizer(_CharTokenizer(), ["\nObservation:"])
    emitted = "".join(detok.push(ord(ch)) for ch in "a\nOb")
    assert emitted == "a"  # "\nOb" may still become the stop string
    emitted += "".join(detok.push(ord(ch)) for ch in "-la") + detok.flush()
    assert emitted == "a\nOb-la" and detok.stop_sequence is None
