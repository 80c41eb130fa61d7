"""Task builders: which images go in a prompt, which one is asked about, and what the right answer is.

Every builder is seeded and deterministic. In a multi-image item the distractors differ from the target AND
from each other in the asked attribute, so "the odd one out" is never a shortcut and a wrong answer that
names another image's value is unambiguous leakage. Target slots are balanced (each slot 1..N equally often,
in shuffled order), so a model that always answers about image 1 scores exactly 1/N on slot binding.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from focus_integrations.errors import InvalidOptionError
from focus_integrations.lab import prompts
from focus_integrations.lab.data import LabImage
from focus_integrations.noise import DEFAULT_NOISE, make_noise

VALUES = {"color": prompts.COLORS, "shape": prompts.SHAPES}


def item_seed(*parts: object) -> int:
    """A stable 31-bit seed from labels (``hash()`` of strings changes between processes)."""
    digest = 0
    for char in repr(parts):
        digest = (digest * 1_000_003 + ord(char)) % 2_147_483_647
    return digest


@dataclass(frozen=True)
class OpenItem:
    """An open question about image ``slot`` (0-based) among ``images``."""

    images: tuple[LabImage, ...]
    slot: int
    attribute: str
    seed: int

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def target(self) -> LabImage:
        return self.images[self.slot]

    @property
    def truth(self) -> str:
        return self.target.answer(self.attribute)

    @property
    def other_answers(self) -> frozenset[str]:
        return frozenset(im.answer(self.attribute) for k, im in enumerate(self.images) if k != self.slot)

    def noise(self) -> Image.Image:
        """The noise image that stands in for a masked slot (the engine's default noise, seeded per item)."""
        return make_noise(self.target.image, DEFAULT_NOISE, rng=np.random.default_rng(self.seed))

    def prompt(self) -> str:
        return prompts.open_question(self.attribute, self.slot + 1)

    # The conditions the lab asks each item under.
    def clean_images(self) -> list[Image.Image]:
        return [im.image for im in self.images]

    def target_alone(self) -> list[Image.Image]:
        """The oracle that knows the slot: the target clean, every other slot noise (FOCUS's row p)."""
        noise = self.noise()
        return [im.image if k == self.slot else noise for k, im in enumerate(self.images)]

    def target_masked(self) -> list[Image.Image]:
        """The target replaced by noise, the others clean (does the model still answer from another?)."""
        noise = self.noise()
        return [noise if k == self.slot else im.image for k, im in enumerate(self.images)]


@dataclass(frozen=True)
class ChoiceItem:
    """MuirBench-style multiple choice about image ``slot``: the options hold the target's value and the
    values of other images in the prompt (the leakage candidates), filled up with unused values."""

    question: OpenItem
    options: tuple[str, ...]

    @property
    def answer_letter(self) -> str:
        return prompts.OPTION_LETTERS[self.options.index(self.question.truth)].lower()

    @property
    def leak_letters(self) -> frozenset[str]:
        others = self.question.other_answers
        return frozenset(prompts.OPTION_LETTERS[i].lower() for i, o in enumerate(self.options) if o in others)

    def prompt(self) -> str:
        q = self.question
        return prompts.multiple_choice_question(q.attribute, q.slot + 1, self.options)


@dataclass(frozen=True)
class PairItem:
    """Winoground-style pair: two images whose captions differ in exactly one attribute."""

    first: LabImage
    second: LabImage
    seed: int

    @property
    def captions(self) -> tuple[str, str]:
        return (
            prompts.caption(self.first.color, self.first.shape),
            prompts.caption(self.second.color, self.second.shape),
        )


def _by_value(pool: Sequence[LabImage], attribute: str) -> dict[str, list[LabImage]]:
    groups: dict[str, list[LabImage]] = {}
    for image in pool:
        groups.setdefault(image.answer(attribute), []).append(image)
    return groups


def open_items(
    pool: Sequence[LabImage], n: int, count: int, *, attribute: str = "color", seed: int = 0
) -> list[OpenItem]:
    """``count`` questions about one of ``n`` images whose ``attribute`` values are all different."""
    values = VALUES.get(attribute)
    if values is None:
        raise InvalidOptionError(f"unknown attribute {attribute!r}; choose one of {tuple(VALUES)}")
    groups = _by_value(pool, attribute)
    if n < 1 or n > len(groups):
        raise InvalidOptionError(
            f"{attribute} questions need 1..{len(groups)} images with distinct values, got n={n}"
        )
    rng = random.Random(item_seed("open", attribute, n, seed))
    slots = [i % n for i in range(count)]
    rng.shuffle(slots)
    items = []
    for index, slot in enumerate(slots):
        chosen = rng.sample(sorted(groups), n)
        images = tuple(rng.choice(groups[value]) for value in chosen)
        items.append(OpenItem(images, slot, attribute, item_seed("open-item", attribute, n, seed, index)))
    return items


def choice_items(pool: Sequence[LabImage], n: int, count: int, *, seed: int = 0) -> list[ChoiceItem]:
    """Colour multiple choice with four options about one of ``n`` images (distinct colours)."""
    rng = random.Random(item_seed("choice", n, seed))
    items = []
    for question in open_items(pool, n, count, attribute="color", seed=item_seed("choice-open", seed)):
        others = sorted(question.other_answers)
        rng.shuffle(others)
        options = [question.truth, *others[: len(prompts.OPTION_LETTERS) - 1]]
        unused = [c for c in prompts.COLORS if c not in options]
        options += rng.sample(unused, len(prompts.OPTION_LETTERS) - len(options))
        rng.shuffle(options)
        items.append(ChoiceItem(question, tuple(options)))
    return items


def pair_items(pool: Sequence[LabImage], count: int, *, seed: int = 0) -> list[PairItem]:
    """Minimal pairs, alternately differing in colour only and in shape only."""
    rng = random.Random(item_seed("pairs", seed))
    by_both: dict[tuple[str, str], list[LabImage]] = {}
    for image in pool:
        by_both.setdefault((image.color, image.shape), []).append(image)
    kinds = sorted(by_both)
    items = []
    for index in range(count):
        while True:
            color, shape = rng.choice(kinds)
            if index % 2 == 0:
                other = (rng.choice([c for c in prompts.COLORS if c != color]), shape)
            else:
                other = (color, rng.choice([s for s in prompts.SHAPES if s != shape]))
            if other in by_both:
                break
        first, second = rng.choice(by_both[(color, shape)]), rng.choice(by_both[other])
        items.append(PairItem(first, second, item_seed("pair-item", seed, index)))
    return items
