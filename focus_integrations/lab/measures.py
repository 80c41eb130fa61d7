"""The lab's measurements, one question kind each: the :class:`AnswerFunction` the model is asked through
(:func:`decoder_answer_function` builds one from a decoder), open questions about image p among N (accuracy,
leakage, slot binding, noise abstention, the single-image and oracle conditions), multiple choice, and
Winoground-style text/image scores. :mod:`focus_integrations.lab.leakage` runs them per N and sweeps alpha.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from focus_integrations.lab import prompts
from focus_integrations.lab.parsing import parse_ab, parse_choice, parse_open
from focus_integrations.lab.stats import Proportion, count
from focus_integrations.lab.tasks import VALUES, ChoiceItem, OpenItem, PairItem


class AnswerFunction(Protocol):
    """The model under test: returns the raw answer text for one prompt."""

    def __call__(
        self,
        images: Sequence[Image.Image],
        prompt: str,
        *,
        mode: str,
        alpha: float | str | None,
        system: str | None,
        seed: int,
    ) -> str: ...


def decoder_answer_function(
    decoder: Any,
    *,
    max_new_tokens: int = 16,
    noise: str | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> AnswerFunction:
    """Wrap a ``FocusDecoder``: greedy decoding, the paper's ``[image]*N + [text]`` user turn.

    ``chat_template_kwargs`` go to the chat template (e.g. ``{"add_vision_id": True}`` for Qwen2/2.5-VL,
    which labels the images "Picture 1:", "Picture 2:" ...).
    """

    def answer(
        images: Sequence[Image.Image],
        prompt: str,
        *,
        mode: str,
        alpha: float | str | None,
        system: str | None,
        seed: int,
    ) -> str:
        options: dict[str, Any] = {
            "mode": mode,
            "seed": seed,
            "max_new_tokens": max_new_tokens,
            "do_sample": False,  # a measurement: greedy, whatever the checkpoint's generation config says
            "chat_template_kwargs": chat_template_kwargs,
        }
        if mode == "focus":
            options["alpha"] = alpha
            if noise is not None:
                options["noise"] = noise
        return decoder.generate(images=list(images), prompt=prompt, system=system, **options).text

    return answer


# ------------------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class OpenOutcome:
    """One parsed open answer against the truth and the other images' values."""

    answer: str | None
    truth: str
    others: frozenset[str]
    text: str

    @property
    def correct(self) -> bool:
        return self.answer == self.truth

    @property
    def leaked(self) -> bool:
        return not self.correct and self.answer in self.others

    @property
    def from_some_image(self) -> bool:
        return self.correct or self.answer in self.others


def accuracy(outcomes: Sequence[OpenOutcome]) -> Proportion:
    return count([o.correct for o in outcomes])


def leakage(outcomes: Sequence[OpenOutcome]) -> Proportion:
    """Wrong AND equal to another image's value."""
    return count([o.leaked for o in outcomes])


def slot_binding(outcomes: Sequence[OpenOutcome]) -> Proportion:
    """Among answers that name the value of some image in the prompt, the share naming the asked one's."""
    return count([o.correct for o in outcomes if o.from_some_image])


def noise_abstention(outcomes: Sequence[OpenOutcome]) -> Proportion:
    """Outcomes of target-masked prompts (truth ``none``): the share not answered from another image."""
    return count([o.answer not in o.others for o in outcomes])


def _ask_open(
    answer_fn: AnswerFunction,
    item: OpenItem,
    images: list[Image.Image],
    prompt: str,
    truth: str,
    mode: str,
    alpha: float | None,
) -> OpenOutcome:
    text = answer_fn(images, prompt, mode=mode, alpha=alpha, system=None, seed=item.seed)
    vocabulary = VALUES[item.attribute]
    return OpenOutcome(parse_open(text, vocabulary), truth, item.other_answers, text)


def ask_clean(answer_fn: AnswerFunction, items: Sequence[OpenItem], mode: str, alpha: float | None = None):
    """Every image clean, asked about image p."""
    return [_ask_open(answer_fn, it, it.clean_images(), it.prompt(), it.truth, mode, alpha) for it in items]


def ask_single(answer_fn: AnswerFunction, items: Sequence[OpenItem]) -> list[OpenOutcome]:
    """The target image alone, asked about "the image" (one image: FOCUS is plain decoding)."""
    return [
        _ask_open(
            answer_fn,
            it,
            [it.target.image],
            prompts.open_question(it.attribute, None),
            it.truth,
            "vanilla",
            None,
        )
        for it in items
    ]


def ask_oracle(answer_fn: AnswerFunction, items: Sequence[OpenItem]) -> list[OpenOutcome]:
    """Image p clean, every other slot noise (vanilla decoding): what FOCUS's row p sees."""
    return [
        _ask_open(answer_fn, it, it.target_alone(), it.prompt(), it.truth, "vanilla", None) for it in items
    ]


def ask_masked(answer_fn: AnswerFunction, items: Sequence[OpenItem]) -> list[OpenOutcome]:
    """Image p replaced by noise, the others clean (vanilla decoding); the right answer is ``none``."""
    return [
        _ask_open(answer_fn, it, it.target_masked(), it.prompt(), prompts.NONE_ANSWER, "vanilla", None)
        for it in items
    ]


def measure_slot_binding(answer_fn: AnswerFunction, items: Sequence[OpenItem]) -> Proportion:
    return slot_binding(ask_clean(answer_fn, items, "vanilla"))


def measure_noise_abstention(answer_fn: AnswerFunction, items: Sequence[OpenItem]) -> Proportion:
    return noise_abstention(ask_masked(answer_fn, items))


@dataclass(frozen=True)
class ChoiceOutcome:
    letter: str | None
    gold: str
    leak_letters: frozenset[str]
    text: str

    @property
    def correct(self) -> bool:
        return self.letter == self.gold

    @property
    def leaked(self) -> bool:
        return self.letter in self.leak_letters


def ask_choice(
    answer_fn: AnswerFunction, items: Sequence[ChoiceItem], mode: str, alpha: float | None = None
) -> list[ChoiceOutcome]:
    outcomes = []
    for item in items:
        q = item.question
        text = answer_fn(q.clean_images(), item.prompt(), mode=mode, alpha=alpha, system=None, seed=q.seed)
        outcomes.append(ChoiceOutcome(parse_choice(text), item.answer_letter, item.leak_letters, text))
    return outcomes


@dataclass(frozen=True)
class PairOutcome:
    """Winoground scores of one pair (text is shared by both modes: one image, FOCUS inactive)."""

    text_correct: bool
    image_correct: bool

    @property
    def group_correct(self) -> bool:
        return self.text_correct and self.image_correct


def ask_text_scores(answer_fn: AnswerFunction, items: Sequence[PairItem]) -> list[bool]:
    results = []
    for item in items:
        first_caption, second_caption = item.captions
        prompt = prompts.text_score_question(first_caption, second_caption)
        right = True
        for image, gold in ((item.first, "a"), (item.second, "b")):
            text = answer_fn(
                [image.image],
                prompt,
                mode="vanilla",
                alpha=None,
                system=prompts.EVALUATOR_SYSTEM,
                seed=item.seed,
            )
            right = right and parse_ab(text) == gold
        results.append(right)
    return results


def ask_image_scores(
    answer_fn: AnswerFunction, items: Sequence[PairItem], mode: str, alpha: float | None = None
) -> list[bool]:
    results = []
    for item in items:
        images = [item.first.image, item.second.image]
        right = True
        for caption, gold in zip(item.captions, "ab"):
            text = answer_fn(
                images,
                prompts.image_score_question(caption),
                mode=mode,
                alpha=alpha,
                system=prompts.EVALUATOR_SYSTEM,
                seed=item.seed,
            )
            right = right and parse_ab(text) == gold
        results.append(right)
    return results
