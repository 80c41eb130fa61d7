"""The default model's training data (used by ``train_default_model.py``): easy-vqa images as a tensor bank,
noise images from the engine's own noise functions, the task mix (open questions about image k, multiple
choice, locate, Winoground-style image and text scores) with its curriculum on the number of images, and the
encoder from conversations to token ids, answer masks and pixels."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_lab_data import read_easy_vqa  # noqa: E402

from focus_integrations.lab import prompts  # noqa: E402
from focus_integrations.noise import NOISE_MODES  # noqa: E402

SOURCE_SIZE = 64  # easy-vqa images; training noise is drawn at this size too, as the engine does
# Noise the training shows in place of images: mostly the engine's default, some others so that "none" is
# about "no shape here", not one texture.
NOISE_MIX = {"imagenet+uniform": 0.7, "random": 0.1, "gaussian": 0.1, "gray": 0.05, "imagenet+gaussian": 0.05}


# ------------------------------------------------------------------------------------------------- data


@dataclass
class ImageBank:
    """Clean images as normalised tensors plus their labels, indexed by colour for distinct-colour draws."""

    pixels: torch.Tensor  # (M, 3, 64, 64)
    colors: list[str]
    shapes: list[str]
    by_color: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for index, color in enumerate(self.colors):
            self.by_color.setdefault(color, []).append(index)


def to_pixels(processor, uint8_images: np.ndarray) -> torch.Tensor:
    """(M, H, W, 3) uint8 -> the processor's pixel tensor (resize, crop, normalise exactly as at inference)."""
    from PIL import Image

    if not len(uint8_images):
        size = processor.image_processor.crop_size["height"]
        return torch.zeros(0, 3, size, size)
    images = [Image.fromarray(array, mode="RGB") for array in uint8_images]
    return processor.image_processor(images, return_tensors="pt")["pixel_values"]


def load_bank(processor, split: str, limit: int | None = None, ids: list[int] | None = None) -> ImageBank:
    from PIL import Image

    labels = read_easy_vqa(split)
    chosen = sorted(labels) if ids is None else ids
    if limit is not None:
        chosen = chosen[:limit]
    arrays = np.stack([np.asarray(Image.open(labels[i]["path"]).convert("RGB")) for i in chosen])
    return ImageBank(
        to_pixels(processor, arrays),
        [labels[i]["color"] for i in chosen],
        [labels[i]["shape"] for i in chosen],
    )


def noise_pixels(processor, count: int, rng: np.random.Generator, mode: str | None = None) -> torch.Tensor:
    """Noise images made by the engine's own noise functions (same uint8 truncation), then processed."""
    modes = list(NOISE_MIX)
    picks = [mode] * count if mode else rng.choice(modes, size=count, p=list(NOISE_MIX.values()))
    blank = np.zeros((SOURCE_SIZE, SOURCE_SIZE, 3))
    arrays = [(np.clip(NOISE_MODES[m](blank, 1.0, rng), 0.0, 1.0) * 255).astype(np.uint8) for m in picks]
    return to_pixels(
        processor, np.stack(arrays) if arrays else np.zeros((0, SOURCE_SIZE, SOURCE_SIZE, 3), np.uint8)
    )


@dataclass
class Example:
    """One conversation: its images (bank index or None for noise) and its turns (system?, [(q, a), ...])."""

    slots: list[int | None]
    turns: list[tuple[str, str]]
    system: str | None = None
    answer_prefix: str = ""  # teacher-forced start of the answer when evaluating without answers


def distinct_color_images(bank: ImageBank, n: int, rng: random.Random) -> list[int]:
    colors = rng.sample(prompts.COLORS, n)
    return [rng.choice(bank.by_color[c]) for c in colors]


def slot_name(n: int, slot: int, rng: random.Random) -> int | None:
    # One image is mostly asked about as "the image", sometimes as "image 1".
    return None if n == 1 and rng.random() < 0.7 else slot


def open_answer(value: str, named_slot: int | None, restate: bool) -> str:
    """The answer text; with ``restate`` the model first names the slot ("image 2: red"), so the colour is
    predicted right after "image 2:", the same tokens that precede image 2 in the prompt (a copy pattern
    small transformers learn far more easily than a lookup from the question)."""
    return f"image {named_slot}: {value}" if restate and named_slot is not None else value


def make_open(bank: ImageBank, n: int, rng: random.Random, restate: bool = False) -> Example:
    images: list[int | None] = list(distinct_color_images(bank, n, rng))
    if rng.random() < (0.3 if n == 1 else 0.5):
        for k in range(n):
            if rng.random() < (1.0 if n == 1 else 0.4):
                images[k] = None
    turns = []
    for _ in range(rng.choice((2, 3, 4))):
        slot = rng.randrange(n)
        attribute = "color" if rng.random() < 0.6 else "shape"
        index = images[slot]
        answer = prompts.NONE_ANSWER if index is None else getattr(bank, attribute + "s")[index]
        named = slot_name(n, slot + 1, rng)
        turns.append((prompts.open_question(attribute, named), open_answer(answer, named, restate)))
    return Example(images, turns)


def make_choice(bank: ImageBank, n: int, rng: random.Random) -> Example:
    images: list[int | None] = list(distinct_color_images(bank, n, rng))
    slot = rng.randrange(n)
    if n > 1 and rng.random() < 0.3:
        for k in range(n):
            if k != slot and rng.random() < 0.5:
                images[k] = None
    target = bank.colors[images[slot]]
    # Options: the target's colour, then other images' colours (the leakage candidates), then random fill.
    others = [bank.colors[i] for k, i in enumerate(images) if k != slot and i is not None]
    rng.shuffle(others)
    options = [target, *others[:3]]
    options += rng.sample([c for c in prompts.COLORS if c not in options], 4 - len(options))
    rng.shuffle(options)
    letter = prompts.OPTION_LETTERS[options.index(target)]
    question = prompts.multiple_choice_question("color", slot_name(n, slot + 1, rng), options)
    return Example(images, [(question, letter)])


def make_locate(bank: ImageBank, n: int, rng: random.Random) -> Example:
    """Content -> slot: "In which image is the red shape?" answered with the image's number. It rewards image
    tokens for carrying their "Image k:" marker, the feature that binding a question to image k needs."""
    images = distinct_color_images(bank, max(n, 2), rng)
    slot = rng.randrange(len(images))
    return Example(list(images), [(prompts.locate_question(bank.colors[images[slot]]), str(slot + 1))])


def make_pair(bank: ImageBank, rng: random.Random) -> tuple[int, int]:
    """Two images whose captions differ in colour, in shape, or in both (Winoground-like minimal pairs)."""
    while True:
        a, b = rng.randrange(len(bank.colors)), rng.randrange(len(bank.colors))
        same_color = bank.colors[a] == bank.colors[b]
        same_shape = bank.shapes[a] == bank.shapes[b]
        if not (same_color and same_shape):
            return a, b


def make_image_score(bank: ImageBank, rng: random.Random) -> Example:
    a, b = make_pair(bank, rng)
    slot = rng.randrange(2)
    index = (a, b)[slot]
    question = prompts.image_score_question(prompts.caption(bank.colors[index], bank.shapes[index]))
    system = prompts.EVALUATOR_SYSTEM if rng.random() < 0.5 else None
    return Example([a, b], [(question, "AB"[slot])], system)


def make_text_score(bank: ImageBank, rng: random.Random) -> Example:
    a, b = make_pair(bank, rng)
    captions = [prompts.caption(bank.colors[i], bank.shapes[i]) for i in (a, b)]
    right = rng.randrange(2)
    if right == 1:
        captions.reverse()
    system = prompts.EVALUATOR_SYSTEM if rng.random() < 0.5 else None
    return Example([a], [(prompts.text_score_question(*captions), "AB"[right])], system)


CURRICULUM = (0.2, 0.45)  # progress at which the largest N goes from 2 to 3, and from 3 to 4


def max_images_at(progress: float, curriculum: tuple[float, float] = CURRICULUM) -> int:
    """Curriculum on the number of images: 2 first, then 3, then 4 (the lab also asks 5 and 6)."""
    return 2 if progress < curriculum[0] else 3 if progress < curriculum[1] else 4


def sample_example(
    bank: ImageBank,
    progress: float,
    rng: random.Random,
    locate_share: float = 0.0,
    curriculum: tuple[float, float] = CURRICULUM,
    restate: bool = False,
) -> Example:
    top = max_images_at(progress, curriculum)
    n = 1 if rng.random() < 0.15 else rng.randint(2, top)
    task = rng.random()
    if task < 0.6 - locate_share:
        return make_open(bank, n, rng, restate)
    if task < 0.6:
        return make_locate(bank, n, rng)
    if task < 0.75:
        return make_choice(bank, n, rng)
    if task < 0.9:
        return make_image_score(bank, rng)
    return make_text_score(bank, rng)


class Encoder:
    """Conversations -> padded token ids, answer-label mask and the batch's pixel tensor."""

    def __init__(self, processor, image_tokens: int) -> None:
        self.processor = processor
        self.image_tokens = image_tokens
        self.tokenizer = processor.tokenizer
        self.image_id = self.tokenizer.convert_tokens_to_ids("<image>")
        self.start_id = self.tokenizer.convert_tokens_to_ids("<|im_start|>")
        self.end_id = self.tokenizer.eos_token_id
        self.assistant_id = self.tokenizer.convert_tokens_to_ids("assistant")

    def conversation(self, example: Example, with_answers: bool) -> list[dict]:
        messages: list[dict] = []
        if example.system:
            messages.append({"role": "system", "content": example.system})
        for turn, (question, answer) in enumerate(example.turns):
            content = [{"type": "image"} for _ in example.slots] if turn == 0 else []
            content.append({"type": "text", "text": question})
            messages.append({"role": "user", "content": content})
            if with_answers or turn < len(example.turns) - 1:
                messages.append({"role": "assistant", "content": answer})
        return messages

    def ids(self, example: Example, with_answers: bool = True) -> list[int]:
        text = self.processor.apply_chat_template(
            self.conversation(example, with_answers), tokenize=False, add_generation_prompt=not with_answers
        )
        if not with_answers:
            text += example.answer_prefix
        ids: list[int] = []
        for token in self.tokenizer(text, add_special_tokens=False)["input_ids"]:
            ids.extend([token] * self.image_tokens if token == self.image_id else [token])
        return ids

    def label_mask(self, ids: list[int]) -> list[bool]:
        """True at every token an assistant turn writes (its words and its closing <|im_end|>)."""
        mask, inside = [False] * len(ids), False
        for i, token in enumerate(ids):
            if inside:
                mask[i] = True
                inside = token != self.end_id
            elif token == self.assistant_id and i > 0 and ids[i - 1] == self.start_id:
                inside = True
        return mask

    def batch(self, examples: list[Example], bank: ImageBank, rng: np.random.Generator, with_answers=True):
        rows = [self.ids(e, with_answers) for e in examples]
        length = max(map(len, rows))
        input_ids = torch.full((len(rows), length), self.tokenizer.pad_token_id)
        attention = torch.zeros((len(rows), length), dtype=torch.long)
        labels = torch.zeros((len(rows), length), dtype=torch.bool)
        for r, ids in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids)  # right padding for training
            attention[r, : len(ids)] = 1
            if with_answers:
                labels[r, : len(ids)] = torch.tensor(self.label_mask(ids))
        slots = [s for e in examples for s in e.slots]
        noise = noise_pixels(self.processor, sum(s is None for s in slots), rng)
        pixels, used = [], 0
        for s in slots:
            if s is None:
                pixels.append(noise[used])
                used += 1
            else:
                pixels.append(bank.pixels[s])
        return input_ids, attention, labels, torch.stack(pixels), [len(r) for r in rows]
