"""The logits rules are small objects, one idea each; build_rule composes them and LogitsRule applies them in
order (combination, plausibility cutoff, placeholder ban). Checked against the rules written out by hand."""

from __future__ import annotations

import pytest
import torch

from focus_integrations import DecodingOptions
from focus_integrations.logits import (
    BanTokens,
    CalibratedFocusCombination,
    FocusCombination,
    PlausibilityCutoff,
    VanillaCombination,
    VcdCombination,
    build_rule,
)


@pytest.fixture()
def logits() -> torch.Tensor:
    return torch.randn(4, 9, generator=torch.Generator().manual_seed(0))


def keep_plausible(combined: torch.Tensor, reference: torch.Tensor, beta: float) -> torch.Tensor:
    probs = torch.softmax(reference, dim=-1)
    return torch.where(probs >= beta * probs.max(), combined, torch.tensor(float("-inf")))


@pytest.mark.parametrize(
    ("options", "kind", "by_hand"),
    [
        ({"mode": "vanilla"}, VanillaCombination, lambda z: z[0]),
        ({"alpha": 0.3}, FocusCombination, lambda z: z[1] + z[2] + z[3] - 0.3 * 3 * z[0]),
        ({"alpha": "n-calibrated"}, CalibratedFocusCombination, lambda z: z[1] + z[2] + z[3] - 2 * z[0]),
    ],
)
def test_each_combination_is_its_rule(logits, options, kind, by_hand) -> None:
    rule = build_rule(DecodingOptions.resolve(**options), 3)
    assert type(rule.combination) is kind and rule.cutoff is None and rule.ban is None
    torch.testing.assert_close(rule.combine(logits[: rule.n_rows]), by_hand(logits), rtol=1e-6, atol=1e-5)


def test_vcd_with_cutoff_and_ban_applies_them_in_order(logits) -> None:
    rule = build_rule(DecodingOptions.resolve(mode="vcd", alpha=0.5), 2, banned_token_ids=(7,))
    assert rule.combination == VcdCombination(0.5)
    assert rule.cutoff == PlausibilityCutoff(0.1) and rule.ban == BanTokens((7,))
    z = logits[:2]
    expected = keep_plausible(1.5 * z[0] - 0.5 * z[1], z[0], 0.1)  # VCD's reference: the clean row
    expected[7] = float("-inf")
    torch.testing.assert_close(rule.combine(z), expected)
    assert (rule.name, rule.alpha, rule.plausibility_beta) == ("vcd", 0.5, 0.1)


def test_focus_cutoff_refers_to_the_mean_of_the_clean_rows(logits) -> None:
    rule = build_rule(DecodingOptions.resolve(alpha=0.2, plausibility_beta=0.3), 3)
    expected = keep_plausible(logits[1:].sum(0) - 0.2 * 3 * logits[0], logits[1:].mean(0), 0.3)
    torch.testing.assert_close(rule.combine(logits), expected)
    # Under a grammar, the cutoff's best token is the best ALLOWED one: an allowed token always survives.
    allowed = torch.zeros(9, dtype=torch.bool)
    allowed[int(torch.argmin(logits[1:].mean(0)))] = True
    assert torch.isfinite(rule.combine(logits, allowed)[allowed]).all()
