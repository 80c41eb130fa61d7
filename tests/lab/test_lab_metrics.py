"""The lab's metrics on constructed cases: fake models whose behaviour is known exactly."""

from __future__ import annotations

import random
import re

import pytest
from PIL import Image

from focus_integrations.errors import InvalidOptionError
from focus_integrations.lab import prompts
from focus_integrations.lab.data import LabImage, load_lab_images
from focus_integrations.lab.leakage import (
    accuracy,
    ask_clean,
    ask_masked,
    leakage,
    measure_noise_abstention,
    measure_slot_binding,
    run_leakage_lab,
    select_alphas,
)
from focus_integrations.lab.parsing import parse_ab, parse_choice, parse_open
from focus_integrations.lab.stats import wilson_interval
from focus_integrations.lab.tasks import choice_items, open_items, pair_items

TEST_POOL = load_lab_images("test")
VAL_POOL = load_lab_images("val")
KNOWN: dict[int, LabImage] = {id(im.image): im for im in TEST_POOL + VAL_POOL}


def seen(image: Image.Image) -> LabImage | None:
    """What a perfect eye sees: the lab image it is, or None for noise."""
    return KNOWN.get(id(image))


def asked_slot(prompt: str) -> int | None:
    match = re.search(r"image (\d)", prompt)
    return int(match.group(1)) - 1 if match else None


def asked_attribute(prompt: str) -> str:
    return "shape" if "What shape" in prompt else "color"


def answer_from(image: LabImage | None, prompt: str) -> str:
    """Answer ``prompt`` as if the question were about ``image`` (open, multiple choice or A/B)."""
    if image is None:
        return "none"
    value = image.answer(asked_attribute(prompt))
    if "Choices:" in prompt:
        options = re.findall(r"\(([A-D])\) (\w+)", prompt)
        return next((letter for letter, option in options if option == value), "A")
    return f"The answer is {value}."


class FromImageOne:
    """Always answers about image 1, whatever the question asks (no slot binding at all)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, float | None]] = []

    def __call__(self, images, prompt, *, mode, alpha, system, seed):
        self.calls.append((len(images), mode, alpha))
        return answer_from(seen(images[0]), prompt)


def bound(images, prompt, *, mode, alpha, system, seed):
    """Answers about the image the prompt names: perfect binding, noise answered "none"."""
    slot = asked_slot(prompt)
    return answer_from(seen(images[0 if slot is None else slot]), prompt)


def random_image(images, prompt, *, mode, alpha, system, seed):
    """Answers about a random clean image (drawn from the call's seed: reproducible)."""
    clean = [im for im in map(seen, images) if im is not None] or [None]
    return answer_from(random.Random(seed).choice(clean), prompt)


# ------------------------------------------------------------------------------------------ statistics


def test_wilson_interval_matches_the_closed_form_and_behaves_at_the_edges():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)  # z^2 / (n + z^2)
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(1 - 0.2775, abs=1e-4)
    narrow, wide = wilson_interval(500, 1000), wilson_interval(5, 10)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_parsing_follows_the_runners():
    assert parse_ab("B.") == "b" and parse_ab("(A): first") == "a"
    assert parse_ab("I cannot say") == "a"  # the Winoground runner's fallback
    assert parse_choice("(C) blue") == "c"
    assert parse_choice("The correct option is D") == "d"  # not the "c" of "correct"
    assert parse_choice("no idea") is None
    assert parse_open("Final answer: Grey", prompts.COLORS) == "gray"
    assert parse_open("It is a red shape, not blue", prompts.COLORS) == "red"
    assert parse_open("I see no shape, only noise.", prompts.COLORS) == "none"
    assert parse_open("purple", prompts.COLORS) is None


# ------------------------------------------------------------------------------------------------ tasks


@pytest.mark.parametrize("n", [2, 4, 6])
def test_open_items_have_distinct_values_and_balanced_slots(n):
    items = open_items(TEST_POOL, n, 12 * n, seed=3)
    for item in items:
        colors = [im.color for im in item.images]
        assert len(set(colors)) == n  # distractors differ from the target and from each other
        assert all(im.split == "test" for im in item.images)
    assert sorted(item.slot for item in items) == sorted(list(range(n)) * 12)


def test_too_many_images_for_distinct_values_is_a_clear_error():
    with pytest.raises(InvalidOptionError):
        open_items(TEST_POOL, 4, 5, attribute="shape")  # only three shapes exist


def test_choice_items_offer_the_target_and_the_leak_candidates():
    for item in choice_items(TEST_POOL, 3, 30, seed=1):
        q = item.question
        assert len(set(item.options)) == 4 and q.truth in item.options
        assert q.other_answers <= set(item.options)
        assert item.answer_letter not in item.leak_letters and len(item.leak_letters) == 2


def test_pairs_differ_in_exactly_one_attribute():
    for pair in pair_items(TEST_POOL, 20, seed=0):
        differences = (pair.first.color != pair.second.color) + (pair.first.shape != pair.second.shape)
        assert differences == 1


# -------------------------------------------------------------------------------------- preconditions


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_a_model_that_always_answers_from_image_one_has_binding_and_abstention_one_over_n(n):
    items = open_items(TEST_POOL, n, 10 * n, seed=0)
    model = FromImageOne()
    binding = measure_slot_binding(model, items)
    assert binding.value == pytest.approx(1 / n)
    assert binding.total == len(items)  # every answer names some image's value
    # Image p noise: when p is image 1 it says "none"; otherwise it answers image 1's colour (a leak).
    assert measure_noise_abstention(model, items).value == pytest.approx(1 / n)
    outcomes = ask_clean(model, items, "vanilla")
    assert accuracy(outcomes).value == pytest.approx(1 / n)
    assert leakage(outcomes).value == pytest.approx((n - 1) / n)


def test_a_bound_model_scores_one_on_both_preconditions():
    items = open_items(TEST_POOL, 4, 40, seed=1)
    assert measure_slot_binding(bound, items).value == 1.0
    assert measure_noise_abstention(bound, items).value == 1.0
    masked = ask_masked(bound, items)
    assert all(o.answer == "none" for o in masked)


def test_a_random_image_model_binds_at_chance():
    n = 4
    binding = measure_slot_binding(random_image, open_items(TEST_POOL, n, 400, seed=2))
    low, high = binding.ci95
    assert low <= 1 / n <= high
    assert binding.value < 0.4


# -------------------------------------------------------------------------------------------- the lab


def test_alpha_is_chosen_per_n_on_the_validation_split_only():
    val_ids = {id(im.image) for im in VAL_POOL}
    looked_at: set[int] = set()

    def best_alpha_depends_on_n(images, prompt, *, mode, alpha, system, seed):
        """Right only at alpha 0.3 with two images, and at the calibrated (N-1)/N with three."""
        looked_at.update(id(im) for im in images if seen(im) is not None)
        good = mode == "focus" and alpha == {2: 0.3, 3: 2 / 3}.get(len(images))
        return bound(images, prompt, mode=mode, alpha=alpha, system=system, seed=seed) if good else "none"

    chosen, info = select_alphas(
        best_alpha_depends_on_n, VAL_POOL, alphas=(0.0, 0.1, 0.3, 1.0), n_values=(2, 3), samples=6, seed=0
    )
    assert chosen == {2: 0.3, 3: 2 / 3}  # (N-1)/N is always in the grid, though not in `alphas`
    row = info["per_n"]["3"]
    assert set(row["focus_accuracy"]) == {"0", "0.1", "0.3", "0.666667", "1"}
    assert row["focus_accuracy"]["0.666667"].value == 1.0 and row["vanilla_accuracy"].value == 0.0
    assert info["single_alpha"] == 0.3  # the best one alpha for both N, from the shared grid
    assert looked_at and looked_at <= val_ids


def test_the_lab_compares_the_calibrated_rule_and_names_the_winner():
    """A model that is only right under the N-calibrated rule: it wins at every N, with intervals."""

    def only_calibrated(images, prompt, *, mode, alpha, system, seed):
        good = mode == "focus" and alpha == "n-calibrated"
        return bound(images, prompt, mode=mode, alpha=alpha, system=system, seed=seed) if good else "none"

    result = run_leakage_lab(
        only_calibrated, n_values=(2, 4), samples=16, seed=0, alphas=(0.1,), pairs=0, include_choice=False
    )
    for n, row in result.per_n.items():
        assert row["focus_calibrated"]["accuracy"].value == 1.0 and row["focus"]["accuracy"].value == 0.0
        rules = row["rules"]
        assert rules["winner"] == "calibrated" and rules["difference_ci95"] == [1.0, 1.0]
        assert (rules["only_faithful_right"], rules["only_calibrated_right"]) == (0, 16)
        assert rules["mcnemar_p"] < 1e-4
        assert row["focus_calibrated"]["alpha"] == (n - 1) / n
    from focus_integrations.lab.report import conclusions, format_table

    assert "N-calib (+16/-0) [+1.00,+1.00]" in format_table(result)
    assert all("N-calibrated rule" in line for line in conclusions(result))


def test_the_lab_is_reproducible_from_its_seed_and_reports_every_measure():
    def run(seed: int) -> dict:
        return run_leakage_lab(
            random_image, n_values=(2, 3), samples=12, seed=seed, alphas=(0.1, 0.5)
        ).to_dict()

    first, again, other = run(7), run(7), run(8)
    first.pop("seconds"), again.pop("seconds"), other.pop("seconds")
    for result in (first, again, other):
        for row in result["per_n"].values():
            row.pop("seconds")
    assert first == again
    assert first != other
    row = first["per_n"]["3"]
    for key in ("single", "oracle", "slot_binding", "noise_abstention", "none_rate"):
        assert (
            0.0 <= row[key]["value"] <= 1.0
            and row[key]["ci95"][0] <= row[key]["value"] <= row[key]["ci95"][1]
        )
    assert row["single"]["value"] == 1.0  # one clean image: the random-image model is right
    assert row["oracle"]["value"] == 1.0  # only the target is clean
    assert set(first["winoground"]) >= {"vanilla", "focus", "pairs", "chance"}


def test_the_lab_passes_mode_and_alpha_through_to_the_model():
    model = FromImageOne()
    result = run_leakage_lab(model, n_values=(2,), samples=4, seed=0, alphas=(0.25,), pairs=2)
    assert result.alphas == {2: 0.25}  # every alpha ties for this model: the smaller wins
    focus_calls = [c for c in model.calls if c[1] == "focus"]
    assert {alpha for _, _, alpha in focus_calls} == {0.25, 0.5, "n-calibrated"}
    assert all(n >= 2 for n, _, _ in focus_calls)
    assert all(alpha is None for _, mode, alpha in model.calls if mode == "vanilla")


def test_bad_lab_settings_raise_documented_errors():
    with pytest.raises(InvalidOptionError):
        run_leakage_lab(bound, n_values=(1, 2), samples=2)
    with pytest.raises(InvalidOptionError):
        run_leakage_lab(bound, n_values=(2,), samples=0)


def test_an_empty_proportion_is_json_null_not_nan():
    import json

    from focus_integrations.lab.stats import Proportion

    assert json.loads(json.dumps(Proportion(0, 0).as_dict())) == {
        "value": None,
        "ci95": None,
        "successes": 0,
        "total": 0,
    }
    assert str(Proportion(0, 0)) == "n/a"


def test_conclusions_say_what_the_numbers_show():
    from focus_integrations.lab.report import conclusion
    from focus_integrations.lab.stats import Proportion

    def row(vanilla, faithful, calibrated, leak_v, leak_c, winner, alpha=0.5):
        return {
            "vanilla": {"accuracy": Proportion(vanilla, 100), "leakage": Proportion(leak_v, 100)},
            "focus": {"alpha": alpha, "accuracy": Proportion(faithful, 100), "leakage": Proportion(0, 100)},
            "focus_calibrated": {"accuracy": Proportion(calibrated, 100), "leakage": Proportion(leak_c, 100)},
            "rules": {"winner": winner},
        }

    broken = conclusion(4, row(97, 28, 97, 2, 2, "calibrated"))
    assert (
        broken.startswith("N=4: FOCUS with alpha 0.5 breaks down (0.28)") and "level with vanilla" in broken
    )
    helps = conclusion(5, row(39, 20, 70, 60, 20, "calibrated"))
    assert "FOCUS helps" in helps and "leaks less (0.20 vs 0.60)" in helps
    level = conclusion(2, row(98, 98, 97, 0, 0, "tie"))
    assert "level in accuracy" in level and "within the 95% intervals" in level
    worse = conclusion(5, row(60, 10, 30, 40, 10, "calibrated", alpha=0.8))
    assert "less accurate than vanilla" in worse and "leaks less" in worse
