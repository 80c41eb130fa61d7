"""Train the project's default vision-language model on easy-vqa (build time only).

The model is made of stock transformers classes only: ``LlavaForConditionalGeneration`` with a small
``CLIPVisionConfig`` tower (64 px, patch 16, CLS kept: 17 tokens per image) and a small Llama text side, a
word-level tokenizer (``tokenizers`` WordLevel in ``PreTrainedTokenizerFast``) covering every prompt the
leakage lab writes, a ``LlavaProcessor`` with the PIL CLIP image processor, and a ChatML-like chat template
that numbers images ("Image 1: <image>", like Qwen2-VL's ``add_vision_id``). ``save_pretrained`` /
``from_pretrained`` round-trip it, so the default exercises the same engine path as real checkpoints.

Recipe (see the model card for the reasons and the measured results):
1. vision stage: the CLIP tower alone learns colour / shape / "noise" from a linear head (head discarded);
2. full training on a task mix built from ``focus_integrations.lab.prompts`` (open colour/shape questions
   about image k, several turns per conversation; MuirBench-style multiple choice; Winoground-style image and
   text scores), with a curriculum on the number of images (2 -> 4; the lab also asks 5 and 6),
   distractors whose colours differ from the target's and from each other, and noise images (the engine's
   own noise functions) whose answer is "none". That last part teaches the model FOCUS's noise-abstention
   precondition: it favours FOCUS. With ``--restate-slot`` (the shipped model) answers about image k start
   by naming it ("image 2: red"), which is what made the model bind questions to images (docs/leakage_lab.md).

Deterministic from ``--seed`` for given ``--steps`` and ``--threads`` (``--minutes`` is only a safety cap
that stops early). The shipped model is the first command below (its training_summary.json has the details).

    python scripts/train_default_model.py --seed 0 --steps 1300 --vision-steps 150 --threads 1 --restate-slot \
        --out focus_integrations/default_model
    python scripts/train_default_model.py --smoke --out /tmp/smoke_model     # CI: < 60 s
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_lab_data import read_easy_vqa  # noqa: E402

from focus_integrations.lab import prompts  # noqa: E402
from focus_integrations.noise import NOISE_MODES  # noqa: E402

SOURCE_SIZE = 64  # easy-vqa images; training noise is drawn at this size too, as the engine does
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SPECIAL_TOKENS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<image>"]
ROLE_WORDS = ["system", "user", "assistant", "tool"]

# ChatML-like turns; every image is announced as "Image k:" (k counts images across the conversation), so
# "image 2" in a question names the same slot the template marked. Text items and string contents pass as is.
CHAT_TEMPLATE = (
    "{% set ns = namespace(image=0) %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item %}{% set ns.image = ns.image + 1 %}"
    "Image {{ ns.image }}: <image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Noise the training shows in place of images: mostly the engine's default, some others so that "none" is
# about "no shape here", not one texture.
NOISE_MIX = {"imagenet+uniform": 0.7, "random": 0.1, "gaussian": 0.1, "gray": 0.05, "imagenet+gaussian": 0.05}


# --------------------------------------------------------------------------------------------- building


def build_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    words: set[str] = set(ROLE_WORDS) | {"image", ":"} | {str(i) for i in range(10)}
    for text in prompts.all_prompt_texts():
        words.update(piece for piece, _ in pre.pre_tokenize_str(text.lower()))
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + sorted(words))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre
    core.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        extra_special_tokens={"image_token": "<image>"},
        model_max_length=1024,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def tokens_per_image(image_size: int, patch_size: int) -> int:
    return (image_size // patch_size) ** 2 + 1  # patches + CLS ("full" feature selection)


def build_processor(tokenizer, image_size: int, patch_size: int):
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )


def build_model(tokenizer, seed: int, text_hidden: int, text_layers: int, image_size: int, patch_size: int):
    from transformers import (
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    vision = CLIPVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        projection_dim=128,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden,
        intermediate_size=text_hidden * 8 // 3,
        num_hidden_layers=text_layers,
        num_attention_heads=text_hidden // 32,
        num_key_value_heads=text_hidden // 32,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        image_seq_length=tokens_per_image(image_size, patch_size),
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=8,
    )
    return model


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


# --------------------------------------------------------------------------------------------- training


def answer_logits(model, input_ids, attention, pixels, positions):
    """Next-token logits at ``positions`` (a bool mask of the label tokens, shifted by one)."""
    out = model.model(input_ids=input_ids, attention_mask=attention, pixel_values=pixels)
    hidden = out.last_hidden_state[:, :-1][positions[:, 1:]]
    return model.lm_head(hidden)


def vision_stage(model, processor, bank: ImageBank, steps: int, batch: int, seed: int, log) -> None:
    """Pre-train the CLIP tower alone: colour (8 + noise) and shape (3 + noise) from CLS and mean token."""
    if steps <= 0:
        return
    tower = model.model.vision_tower
    width = tower.config.hidden_size
    generator = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed + 1)
    head = torch.nn.Linear(2 * width, len(prompts.COLORS) + 1 + len(prompts.SHAPES) + 1)
    optimizer = torch.optim.AdamW([*tower.parameters(), *head.parameters()], lr=2e-3, weight_decay=0.01)
    color_index = {c: i for i, c in enumerate(prompts.COLORS)}
    shape_index = {s: i for i, s in enumerate(prompts.SHAPES)}
    colors = torch.tensor([color_index[c] for c in bank.colors])
    shapes = torch.tensor([shape_index[s] for s in bank.shapes])
    start = time.time()
    for step in range(steps):
        picks = torch.randint(len(bank.colors), (batch,), generator=generator)
        n_noise = batch // 5
        pixels = torch.cat([bank.pixels[picks[n_noise:]], noise_pixels(processor, n_noise, rng)])
        color_y = torch.cat([colors[picks[n_noise:]], torch.full((n_noise,), len(prompts.COLORS))])
        shape_y = torch.cat([shapes[picks[n_noise:]], torch.full((n_noise,), len(prompts.SHAPES))])
        hidden = tower(pixel_values=pixels).last_hidden_state
        logits = head(torch.cat([hidden[:, 0], hidden[:, 1:].mean(1)], -1))
        color_logits, shape_logits = (
            logits[:, : len(prompts.COLORS) + 1],
            logits[:, len(prompts.COLORS) + 1 :],
        )
        loss = F.cross_entropy(color_logits, color_y) + F.cross_entropy(shape_logits, shape_y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == steps - 1:
            color_acc = (color_logits.argmax(-1) == color_y).float().mean().item()
            shape_acc = (shape_logits.argmax(-1) == shape_y).float().mean().item()
            log(
                f"vision {step:5d} loss {loss.item():.3f} color {color_acc:.2f} shape {shape_acc:.2f} "
                f"{time.time() - start:.0f}s"
            )


@torch.no_grad()
def quick_eval(
    model, encoder: Encoder, bank: ImageBank, samples: int, seed: int, restate: bool = False
) -> dict[str, float]:
    """Greedy first answer token on held-out images: single, multi (N=2,3,4,6), noise target, binding."""
    model.eval()
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    results: dict[str, float] = {}

    def run(examples: list[Example]) -> list[str]:
        input_ids, attention, _, pixels, lengths = encoder.batch(examples, bank, np_rng, with_answers=False)
        out = model.model(input_ids=input_ids, attention_mask=attention, pixel_values=pixels)
        last = out.last_hidden_state[torch.arange(len(lengths)), torch.tensor(lengths) - 1]
        return encoder.tokenizer.convert_ids_to_tokens(model.lm_head(last).argmax(-1).tolist())

    for n in (1, 2, 3, 4, 6):
        for attribute in ("color", "shape") if n == 1 else ("color",):
            examples, truth, others = [], [], []
            for _ in range(samples):
                images = distinct_color_images(bank, n, rng)
                slot = rng.randrange(n)
                values = getattr(bank, attribute + "s")
                prefix = open_answer("", slot + 1, restate)
                examples.append(
                    Example(list(images), [(prompts.open_question(attribute, slot + 1), "")], None, prefix)
                )
                truth.append(values[images[slot]])
                others.append({values[i] for k, i in enumerate(images) if k != slot})
            answers = run(examples)
            results[f"n{n}_{attribute}"] = float(np.mean([a == t for a, t in zip(answers, truth)]))
            if n > 1:
                results[f"n{n}_leak"] = float(
                    np.mean([a != t and a in o for a, t, o in zip(answers, truth, others)])
                )
    # Noise abstention at N=3: target slot noise, the others clean.
    examples, others = [], []
    for _ in range(samples):
        images: list[int | None] = list(distinct_color_images(bank, 3, rng))
        slot = rng.randrange(3)
        others.append({bank.colors[i] for k, i in enumerate(images) if k != slot})
        images[slot] = None
        prefix = open_answer("", slot + 1, restate)
        examples.append(Example(images, [(prompts.open_question("color", slot + 1), "")], None, prefix))
    answers = run(examples)
    results["n3_noise_none"] = float(np.mean([a == prompts.NONE_ANSWER for a in answers]))
    results["n3_noise_leak"] = float(np.mean([a in o for a, o in zip(answers, others)]))
    model.train()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="where the final checkpoint is saved")
    parser.add_argument("--work-dir", type=Path, default=None, help="log and intermediate checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1300, help="main-stage optimiser steps")
    parser.add_argument("--vision-steps", type=int, default=150)
    parser.add_argument("--minutes", type=float, default=60.0, help="safety cap on wall time (stops early)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--locate-share", type=float, default=0.0, help="share of 'In which image is the red shape?' examples"
    )
    parser.add_argument(
        "--restate-slot",
        action="store_true",
        help='answer open questions about image k as "image k: <value>" (the model names the slot first)',
    )
    parser.add_argument(
        "--curriculum", type=float, nargs=2, default=CURRICULUM, help="progress where max N becomes 3, then 4"
    )
    parser.add_argument("--text-hidden", type=int, default=128)
    parser.add_argument("--text-layers", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64, help="the processor's input size (pixels)")
    parser.add_argument(
        "--patch-size", type=int, default=16, help="ViT patch; tokens per image = (size/patch)^2 + 1"
    )
    parser.add_argument("--eval-every", type=int, default=400)
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--checkpoint-every", type=int, default=400)
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads; on a shared, oversubscribed CPU 1 is far faster (2.3 s vs 11-26 s per step measured)",
    )
    parser.add_argument("--smoke", action="store_true", help="a few dozen steps on a handful of images (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        # A few dozen steps on a handful of images; explicit --steps / --vision-steps still win.
        given = set(argv if argv is not None else sys.argv[1:])
        args.steps = args.steps if "--steps" in given else 20
        args.vision_steps = args.vision_steps if "--vision-steps" in given else 5
        args.batch_size, args.eval_every, args.eval_samples, args.checkpoint_every = 4, 10**9, 4, 10**9
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    work = args.work_dir or args.out.parent / (args.out.name + "_work")
    work.mkdir(parents=True, exist_ok=True)
    log_file = (work / "train.log").open("a")

    def log(line: str) -> None:
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    started = time.time()
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer, args.image_size, args.patch_size)
    model = build_model(
        tokenizer, args.seed, args.text_hidden, args.text_layers, args.image_size, args.patch_size
    )
    encoder = Encoder(processor, tokens_per_image(args.image_size, args.patch_size))
    train = load_bank(processor, "train", limit=64 if args.smoke else None)
    # Monitoring uses the lab's validation images (never its test split).
    lab_labels = json.loads(
        (Path(__file__).resolve().parents[1] / "focus_integrations/assets/lab/labels.json").read_text()
    )
    val_ids = [r["id"] for r in lab_labels["images"] if r["split"] == "val"]
    val = load_bank(processor, "test", ids=val_ids[:64] if args.smoke else val_ids)
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"seed {args.seed} params {n_params} vocab {len(tokenizer)} train images {len(train.colors)} "
        f"torch {torch.__version__} threads {torch.get_num_threads()} {platform.processor() or platform.machine()}"
    )

    vision_stage(model, processor, train, args.vision_steps, 8 if args.smoke else 128, args.seed, log)
    vision_seconds = time.time() - started

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, min(200, args.steps // 10))

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    rng = random.Random(args.seed + 2)
    np_rng = np.random.default_rng(args.seed + 2)
    model.train()
    history, step, running, main_start = [], 0, 0.0, time.time()
    for step in range(args.steps):
        if time.time() - started > args.minutes * 60:
            log(f"time cap of {args.minutes} min reached at step {step}")
            break
        progress = step / args.steps
        curriculum = tuple(args.curriculum)
        examples = [
            sample_example(train, progress, rng, args.locate_share, curriculum, args.restate_slot)
            for _ in range(args.batch_size)
        ]
        input_ids, attention, labels, pixels, _ = encoder.batch(examples, train, np_rng)
        logits = answer_logits(model, input_ids, attention, pixels, labels)
        loss = F.cross_entropy(logits, input_ids[labels])
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 50 == 0:
            rate = (time.time() - main_start) / (step + 1)
            log(
                f"step {step:6d} loss {running:.4f} maxN {max_images_at(progress)} lr {lr_at(step):.2e} "
                f"{rate:.2f}s/step elapsed {(time.time() - started) / 60:.1f} min"
            )
        if (step + 1) % args.eval_every == 0 or step == args.steps - 1:
            metrics = quick_eval(model, encoder, val, args.eval_samples, args.seed + 3, args.restate_slot)
            history.append({"step": step + 1, **metrics})
            log(f"eval {step + 1}: " + " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        if (step + 1) % args.checkpoint_every == 0:
            model.save_pretrained(work / "checkpoint")
            processor.save_pretrained(work / "checkpoint")
            log(f"checkpoint at step {step + 1} -> {work / 'checkpoint'}")

    final = quick_eval(model, encoder, val, args.eval_samples, args.seed + 3, args.restate_slot)
    log("final: " + " ".join(f"{k} {v:.3f}" for k, v in final.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    summary = {
        "seed": args.seed,
        "steps_planned": args.steps,
        "steps_done": step + 1,
        "vision_steps": args.vision_steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "locate_share": args.locate_share,
        "restate_slot": args.restate_slot,
        "curriculum": list(args.curriculum),
        "parameters": n_params,
        "image_size": args.image_size,
        "patch_size": args.patch_size,
        "vocab_size": len(tokenizer),
        "vision_stage_seconds": round(vision_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "smoke": args.smoke,
        "final_validation": final,
        "history": history,
    }
    (args.out / "training_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(f"saved to {args.out} after {summary['total_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
