"""The leakage lab: how much a model leaks across images, and whether it meets FOCUS's preconditions.

Everything here talks to the model through an :class:`AnswerFunction` (images, prompt, mode, alpha, system,
seed -> text). :func:`decoder_answer_function` makes one from a :class:`~focus_integrations.FocusDecoder`, so
the lab runs on any supported checkpoint; tests drive the same code with plain Python fakes.

Measured per number of images N (all on the ``test`` split; alpha is chosen on ``val`` only):

- ``single_image``: colour and shape of one image asked about "the image" (the ceiling), and per N
  ``single``: each item's target alone; chance is 1/#values.
- ``vanilla`` / ``focus`` / ``focus_calibrated``: open question about image p among N (distinct values):
  accuracy, and leakage (wrong AND equal to another image's value). ``focus`` is the faithful rule
  ``sum_k z_k - alpha*N*z_0`` with the alpha chosen for that N on ``val`` (the grid always holds (N-1)/N);
  ``focus_calibrated`` is the N-calibrated rule (``alpha="n-calibrated"``: alpha = (N-1)/N, no tuning).
  ``rules`` compares the two per N: which wins, by non-overlapping Wilson intervals, and the paired counts.
- ``oracle``: image p clean, every other slot noise (FOCUS's row p; an upper bound that knows the slot).
- ``slot_binding`` (precondition 1): among vanilla answers that name some image's value, the share that
  names image p's. A model that answers about a random image, or always about image 1, scores 1/N.
- ``noise_abstention`` (precondition 2): image p replaced by noise, the others clean: the share of answers
  that do NOT name another image's value (``none_rate``: the share that say "none").
- ``choice``: MuirBench-style multiple choice (4 options: the target's value and other images' values).
- ``winoground`` (N=2 minimal pairs): text, image and group scores, vanilla vs FOCUS (text queries have one
  image, so FOCUS is inactive there and both modes share them).

The measurements themselves (one function per question kind) are :mod:`focus_integrations.lab.measures`;
this module runs them: alpha selection on ``val``, the per-N conditions, the rule comparison, the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from focus_integrations.errors import InvalidOptionError
from focus_integrations.lab import prompts
from focus_integrations.lab.data import LabImage, load_lab_images
from focus_integrations.lab.measures import (
    AnswerFunction,
    ChoiceOutcome,
    OpenOutcome,
    PairOutcome,
    accuracy,
    ask_choice,
    ask_clean,
    ask_image_scores,
    ask_masked,
    ask_oracle,
    ask_single,
    ask_text_scores,
    decoder_answer_function,
    leakage,
    measure_noise_abstention,
    measure_slot_binding,
    noise_abstention,
    slot_binding,
)
from focus_integrations.lab.stats import Proportion, count
from focus_integrations.lab.tasks import (
    VALUES,
    choice_items,
    item_seed,
    open_items,
    pair_items,
)

# The measurements live in lab.measures; importable from here as before.
__all__ = [
    "DEFAULT_ALPHAS",
    "DEFAULT_N_VALUES",
    "EXAMPLES_PER_CONDITION",
    "MODES",
    "N_CALIBRATED",
    "AnswerFunction",
    "ChoiceOutcome",
    "LabResult",
    "OpenOutcome",
    "PairOutcome",
    "accuracy",
    "alpha_grid",
    "ask_choice",
    "ask_clean",
    "ask_image_scores",
    "ask_masked",
    "ask_oracle",
    "ask_single",
    "ask_text_scores",
    "compare_rules",
    "decoder_answer_function",
    "leakage",
    "measure_noise_abstention",
    "measure_slot_binding",
    "noise_abstention",
    "run_leakage_lab",
    "select_alphas",
    "slot_binding",
]

DEFAULT_ALPHAS: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 1.0)
N_CALIBRATED = "n-calibrated"  # the engine's alpha value for the N-calibrated rule
DEFAULT_N_VALUES: tuple[int, ...] = (2, 3, 4, 5, 6)
MODES = ("vanilla", "focus")
EXAMPLES_PER_CONDITION = 3


# ---------------------------------------------------------------------------------------------- the lab


@dataclass
class LabResult:
    """Everything one lab run measured (``to_dict`` is the JSON written to disk)."""

    settings: dict[str, Any]
    alphas: dict[int, float]  # the faithful rule's alpha per N (chosen on val, or fixed)
    alpha_validation: dict[str, Any]
    single_image: dict[str, Proportion] = field(default_factory=dict)
    per_n: dict[int, dict[str, Any]] = field(default_factory=dict)
    winoground: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Proportion):
                return value.as_dict()
            if isinstance(value, dict):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        return plain(
            {
                "settings": self.settings,
                "alpha_by_n": self.alphas,
                "alpha_validation": self.alpha_validation,
                "single_image": self.single_image,
                "per_n": self.per_n,
                "winoground": self.winoground,
                "seconds": round(self.seconds, 1),
            }
        )


def alpha_grid(alphas: Sequence[float], n: int) -> list[float]:
    """The val grid for N images: the given alphas plus (N-1)/N (the faithful rule at the calibrated value)."""
    return sorted({float(a) for a in alphas} | {(n - 1) / n})


def select_alphas(
    answer_fn: AnswerFunction,
    pool: Sequence[LabImage],
    *,
    alphas: Sequence[float],
    n_values: Sequence[int],
    samples: int,
    seed: int,
    attribute: str = "color",
) -> tuple[dict[int, float], dict[str, Any]]:
    """For each N, the alpha with the best FOCUS accuracy on ``pool`` (validation images only).

    The grid for N is ``alphas`` plus (N-1)/N. Ties go to the smaller alpha (the milder contrast).
    """
    if not alphas:
        raise InvalidOptionError("need at least one alpha")
    chosen: dict[int, float] = {}
    per_n: dict[str, Any] = {}
    for n in n_values:
        items = open_items(pool, n, samples, attribute=attribute, seed=item_seed("val", seed, n))
        scores = {a: accuracy(ask_clean(answer_fn, items, "focus", a)) for a in alpha_grid(alphas, n)}
        chosen[n] = max(scores, key=lambda a: (scores[a].value, -a))
        per_n[str(n)] = {
            "items": len(items),
            "chosen": chosen[n],
            "focus_accuracy": {f"{a:g}": p for a, p in scores.items()},
            "vanilla_accuracy": accuracy(ask_clean(answer_fn, items, "vanilla")),
        }
    return chosen, {"split": "val", "per_n": per_n, "single_alpha": _best_single_alpha(per_n, alphas)}


def _best_single_alpha(per_n: dict[str, Any], alphas: Sequence[float]) -> float:
    """The one alpha of ``alphas`` with the best accuracy pooled over every N (the paper's protocol: one
    alpha for all N); ties go to the smaller alpha."""

    def pooled(alpha: float) -> float:
        scores = [row["focus_accuracy"][f"{float(alpha):g}"] for row in per_n.values()]
        return sum(p.successes for p in scores) / max(1, sum(p.total for p in scores))

    return max(sorted({float(a) for a in alphas}), key=lambda a: (pooled(a), -a))


def compare_rules(
    faithful: Sequence[OpenOutcome], calibrated: Sequence[OpenOutcome], *, same_rule: bool = False
) -> dict[str, Any]:
    """Which rule wins on the same items, with a paired 95% interval of the accuracy difference.

    ``difference`` is calibrated minus faithful accuracy, its percentile-bootstrap interval resampling items
    (both rules answered the same items); a rule wins when the interval excludes 0, else "tie". ``mcnemar``
    is the exact test on the items only one rule got right. ``same_rule``: val chose alpha = (N-1)/N, so the
    two are one rule.
    """
    from focus_integrations.harness.stats import mcnemar_exact, paired_bootstrap_ci

    right_f = [o.correct for o in faithful]
    right_c = [o.correct for o in calibrated]
    interval = paired_bootstrap_ci(right_c, right_f)
    if same_rule:
        winner = "same rule"
    elif interval is not None and interval[0] > 0:
        winner = "calibrated"
    elif interval is not None and interval[1] < 0:
        winner = "faithful"
    else:
        winner = "tie"
    test = mcnemar_exact(right_f, right_c)
    return {
        "winner": winner,
        "difference": (sum(right_c) - sum(right_f)) / max(1, len(right_f)),
        "difference_ci95": list(interval) if interval is not None else None,
        "only_faithful_right": test["b"],
        "only_calibrated_right": test["c"],
        "mcnemar_p": test["p_value"],
    }


def run_leakage_lab(
    answer_fn: AnswerFunction,
    *,
    n_values: Sequence[int] = DEFAULT_N_VALUES,
    samples: int = 100,
    seed: int = 0,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    val_samples: int | None = None,
    pairs: int | None = None,
    attribute: str = "color",
    fixed_alpha: float | dict[int, float] | None = None,
    include_choice: bool = True,
    model_name: str = "",
    progress: Callable[[str], None] | None = None,
) -> LabResult:
    """Run the whole lab. Deterministic for a given ``seed`` when the answer function is.

    ``fixed_alpha`` (one value, or one per N) skips the validation search (for values chosen on validation
    data before, e.g. in the model card); ``include_choice=False`` and ``pairs=0`` leave out multiple choice
    and Winoground. Multiple choice and Winoground use the faithful rule with each N's alpha."""
    n_values = sorted(set(n_values))
    if not n_values or min(n_values) < 2:
        raise InvalidOptionError(f"n_values must be numbers of images >= 2, got {n_values}")
    if samples < 1:
        raise InvalidOptionError(f"samples must be >= 1, got {samples}")
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    val_pool, test_pool = load_lab_images("val"), load_lab_images("test")
    val_samples = val_samples if val_samples is not None else max(10, samples // 2)
    pairs = pairs if pairs is not None else samples

    if fixed_alpha is not None:
        chosen = fixed_alpha if isinstance(fixed_alpha, dict) else dict.fromkeys(n_values, fixed_alpha)
        missing = sorted(set(n_values) - set(chosen))
        if missing:
            raise InvalidOptionError(f"fixed_alpha has no alpha for N = {missing}")
        alpha_by_n, alpha_validation = {n: float(chosen[n]) for n in n_values}, {"fixed": True}
    else:
        say(
            f"choosing alpha per N from {list(alphas)} + (N-1)/N on the val split ({val_samples} items per N)"
        )
        alpha_by_n, alpha_validation = select_alphas(
            answer_fn,
            val_pool,
            alphas=alphas,
            n_values=n_values,
            samples=val_samples,
            seed=seed,
            attribute=attribute,
        )
    say("alpha per N: " + ", ".join(f"N={n}: {a:.3g}" for n, a in alpha_by_n.items()))
    result = LabResult(
        settings={
            "model": model_name,
            "seed": seed,
            "samples_per_n": samples,
            "val_samples_per_n": val_samples,
            "pairs": pairs,
            "n_values": n_values,
            "alphas": list(alphas) if fixed_alpha is None else "fixed",
            "attribute": attribute,
            "split": "test",
        },
        alphas=alpha_by_n,
        alpha_validation=alpha_validation,
    )
    for attr in VALUES:
        # The ceiling for each attribute: one image, asked about "the image".
        singles = open_items(test_pool, 1, samples, attribute=attr, seed=item_seed("test-single", seed))
        result.single_image[attr] = accuracy(ask_single(answer_fn, singles))
    say("single image: " + ", ".join(f"{a} {p}" for a, p in result.single_image.items()))
    for n in n_values:
        t0 = time.perf_counter()
        items = open_items(test_pool, n, samples, attribute=attribute, seed=item_seed("test", seed, n))
        alpha = alpha_by_n[n]
        single = ask_single(answer_fn, items)
        vanilla = ask_clean(answer_fn, items, "vanilla")
        focus = ask_clean(answer_fn, items, "focus", alpha)
        calibrated = ask_clean(answer_fn, items, "focus", N_CALIBRATED)
        oracle = ask_oracle(answer_fn, items)
        masked = ask_masked(answer_fn, items)
        choices = (
            choice_items(test_pool, n, samples, seed=item_seed("test-choice", seed, n))
            if include_choice
            else []
        )
        choice_vanilla = ask_choice(answer_fn, choices, "vanilla")
        choice_focus = ask_choice(answer_fn, choices, "focus", alpha)
        result.per_n[n] = {
            "chance": {"open": 1 / len(VALUES[attribute]), "random_image": 1 / n, "choice": 0.25},
            "single": accuracy(single),
            "oracle": accuracy(oracle),
            "vanilla": {"accuracy": accuracy(vanilla), "leakage": leakage(vanilla)},
            "focus": {"alpha": alpha, "accuracy": accuracy(focus), "leakage": leakage(focus)},
            "focus_calibrated": {
                "alpha": (n - 1) / n,
                "accuracy": accuracy(calibrated),
                "leakage": leakage(calibrated),
            },
            "rules": compare_rules(focus, calibrated, same_rule=abs(alpha - (n - 1) / n) < 1e-9),
            "slot_binding": slot_binding(vanilla),
            "noise_abstention": noise_abstention(masked),
            "none_rate": count([o.answer == prompts.NONE_ANSWER for o in masked]),
            "choice": {
                "vanilla": {
                    "accuracy": count([o.correct for o in choice_vanilla]),
                    "leakage": count([o.leaked for o in choice_vanilla]),
                },
                "focus": {
                    "accuracy": count([o.correct for o in choice_focus]),
                    "leakage": count([o.leaked for o in choice_focus]),
                },
            },
            # A few raw answers per condition, to see what the model actually wrote.
            "examples": {
                name: [o.text for o in outcomes[:EXAMPLES_PER_CONDITION]]
                for name, outcomes in (
                    ("vanilla", vanilla),
                    ("focus", focus),
                    ("focus_calibrated", calibrated),
                    ("oracle", oracle),
                    ("masked", masked),
                )
            },
            "seconds": round(time.perf_counter() - t0, 1),
        }
        row = result.per_n[n]
        say(
            f"N={n}: vanilla {row['vanilla']['accuracy']}  focus {row['focus']['accuracy']}  "
            f"calibrated {row['focus_calibrated']['accuracy']}  ({row['seconds']}s)"
        )

    if 2 in n_values and pairs > 0:
        pair_list = pair_items(test_pool, pairs, seed=item_seed("test-pairs", seed))
        text = ask_text_scores(answer_fn, pair_list)
        result.winoground = {"pairs": pairs, "chance": {"text": 0.25, "image": 0.25, "group": 1 / 6}}
        for mode in MODES:
            image = ask_image_scores(answer_fn, pair_list, mode, alpha_by_n[2] if mode == "focus" else None)
            outcomes = [PairOutcome(t, i) for t, i in zip(text, image)]
            result.winoground[mode] = {
                "text": count([o.text_correct for o in outcomes]),
                "image": count([o.image_correct for o in outcomes]),
                "group": count([o.group_correct for o in outcomes]),
            }
        say(
            f"winoground: image vanilla {result.winoground['vanilla']['image']} focus {result.winoground['focus']['image']}"
        )
    result.seconds = time.perf_counter() - started
    return result
