"""The fast path (one batch, KV cache, lockstep rows) against the slow reference, for every family."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from PIL import Image

from focus_integrations import FocusDecoder
from focus_integrations.testing.tiny_models import FAMILIES, tiny_checkpoint

from .reference import reference_focus_greedy, reference_focus_logprob

PROMPT = "Which image shows the red shape?"


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 30), (33, 47), (50, 50), (29, 41)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes[:n]]


@pytest.fixture(scope="module", params=FAMILIES)
def decoder(request) -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint(request.param), dtype="float32")


def test_cached_batched_focus_equals_uncached_reference(decoder: FocusDecoder) -> None:
    images = _images(3)
    out = decoder.generate(images=images, prompt=PROMPT, mode="focus", alpha=0.3, seed=7, max_new_tokens=5)
    expected, _ = reference_focus_greedy(
        decoder.model,
        decoder.processor,
        images,
        PROMPT,
        alpha=0.3,
        seed=7,
        max_new_tokens=5,
        banned=decoder.banned_token_ids,
    )
    assert out.token_ids == expected[: len(out.token_ids)]
    if len(out.token_ids) < 5:  # stopped early: it must have been on an end token
        assert out.token_ids[-1] in decoder.eos_token_ids


def test_score_equals_teacher_forced_reference(decoder: FocusDecoder) -> None:
    images = _images(2, seed=3)
    candidates = ["A", "B!", "yes no"]
    got = decoder.score(images=images, prompt=PROMPT, candidates=candidates, mode="focus", alpha=0.5, seed=11)
    for text, value in zip(candidates, got):
        ids = decoder.tokenizer(text, add_special_tokens=False)["input_ids"]
        ref = reference_focus_logprob(
            decoder.model,
            decoder.processor,
            images,
            PROMPT,
            ids,
            alpha=0.5,
            seed=11,
            banned=decoder.banned_token_ids,
        )
        assert value == pytest.approx(ref, abs=1e-4)


def test_row_groups_give_the_same_answer_as_one_batch(decoder: FocusDecoder) -> None:
    images = _images(3, seed=5)
    whole = decoder.generate(images=images, prompt=PROMPT, seed=1, max_new_tokens=4)
    chunked = decoder.generate(images=images, prompt=PROMPT, seed=1, max_new_tokens=4, row_chunk_size=2)
    assert chunked.token_ids == whole.token_ids
    assert whole.settings["n_rows"] == 4


def test_sampling_appends_one_token_to_every_row(decoder: FocusDecoder) -> None:
    seen: list[torch.Tensor] = []

    def record(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1:
            seen.append(ids.clone())

    handle = decoder.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        out = decoder.generate(
            images=_images(3), prompt=PROMPT, do_sample=True, temperature=1.5, seed=3, max_new_tokens=6
        )
    finally:
        handle.remove()
    assert len(seen) == len(out.token_ids) - 1 or (
        len(seen) == len(out.token_ids) and out.finish_reason == "length"
    )
    for step, ids in enumerate(seen):
        assert ids.shape[0] == 4
        assert torch.all(ids == ids[0]), "rows diverged"
        assert int(ids[0, 0]) == out.token_ids[step]


def test_seed_makes_sampling_and_noise_reproducible(decoder: FocusDecoder) -> None:
    kwargs = dict(images=_images(2), prompt=PROMPT, do_sample=True, temperature=2.0, max_new_tokens=6)
    first = decoder.generate(seed=123, **kwargs)
    again = decoder.generate(seed=123, **kwargs)
    assert first.token_ids == again.token_ids
    logps = [decoder.score(images=_images(2), prompt=PROMPT, candidates=["A"], seed=s)[0] for s in (1, 1, 2)]
    assert logps[0] == logps[1]
    assert logps[0] != logps[2], "a different seed must draw different noise"


def test_vanilla_equals_transformers_generate(decoder: FocusDecoder) -> None:
    images = _images(2)
    out = decoder.generate(images=images, prompt=PROMPT, mode="vanilla", max_new_tokens=5)
    messages = [{"role": "user", "content": [{"type": "image"}] * 2 + [{"type": "text", "text": PROMPT}]}]
    text = decoder.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    bos = getattr(decoder.tokenizer, "bos_token", None)
    inputs = decoder.processor(
        text=[text],
        images=[images],
        return_tensors="pt",
        add_special_tokens=not (bos and text.startswith(bos)),
    )
    banned = [[i] for i in decoder.banned_token_ids] or None
    generated = decoder.model.generate(
        **inputs, do_sample=False, max_new_tokens=5, min_new_tokens=0, bad_words_ids=banned
    )
    expected = generated[0, inputs["input_ids"].shape[1] :].tolist()
    assert out.token_ids == expected[: len(out.token_ids)]


def test_focus_with_one_image_is_plain_decoding(decoder: FocusDecoder) -> None:
    image = _images(1)
    focus = decoder.generate(images=image, prompt=PROMPT, mode="focus", alpha=0.7, max_new_tokens=4)
    vanilla = decoder.generate(images=image, prompt=PROMPT, mode="vanilla", max_new_tokens=4)
    assert focus.token_ids == vanilla.token_ids
    assert focus.settings["rule"] == "vanilla" and focus.settings["n_rows"] == 1


@pytest.mark.parametrize("mode", ["focus", "vcd"])
def test_shared_vision_path_equals_encoding_every_row(decoder: FocusDecoder, mode: str) -> None:
    images = _images(3, seed=9)
    kwargs = dict(images=images, prompt=PROMPT, mode=mode, seed=4, candidates=["A", "B C"])
    shared = decoder.score_tokens(shared_vision=True, **kwargs)
    plain = decoder.score_tokens(shared_vision=False, **kwargs)
    assert np.allclose(np.array(sum(shared, [])), np.array(sum(plain, [])), atol=1e-5)
    gen = dict(images=images, prompt=PROMPT, mode=mode, seed=4, max_new_tokens=4)
    assert (
        decoder.generate(shared_vision=True, **gen).token_ids
        == decoder.generate(shared_vision=False, **gen).token_ids
    )


def test_shared_vision_encodes_each_distinct_image_once(decoder: FocusDecoder) -> None:
    if not decoder.supports_shared_vision:
        pytest.skip("this transformers version has no mm_encoder_outputs: every row is encoded")
    inner = getattr(decoder.model, "model", decoder.model)
    calls: list[int] = []
    original = inner.get_image_features

    @functools.wraps(original)  # keeps the signature the engine inspects
    def counting(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append(1)
        return out

    inner.get_image_features = counting  # instance attribute on the test's own model object
    try:
        decoder.generate(images=_images(3), prompt=PROMPT, seed=0, max_new_tokens=2)
    finally:
        del inner.get_image_features
    assert len(calls) == 1, "one vision pass for the 2N distinct images, none per row"


def test_prefix_sharing_prefills_less_and_changes_nothing(decoder: FocusDecoder) -> None:
    images = _images(3, seed=2)
    kwargs = dict(images=images, prompt=PROMPT, seed=6, candidates=["A", "B C"])
    prefilled: list[int] = []

    def count(module, args, kwargs_):
        ids = kwargs_.get("input_ids")
        if ids is not None and ids.shape[1] > 1:
            prefilled.append(ids.numel())

    handle = decoder.model.register_forward_pre_hook(count, with_kwargs=True)
    try:
        shared = decoder.score_tokens(share_prefix=True, **kwargs)
        shared_tokens = sum(prefilled)
        prefilled.clear()
        full = decoder.score_tokens(share_prefix=False, **kwargs)
        full_tokens = sum(prefilled)
    finally:
        handle.remove()
    assert np.allclose(np.array(sum(shared, [])), np.array(sum(full, [])), atol=1e-5)
    gen = dict(images=images, prompt=PROMPT, seed=6, max_new_tokens=4)
    assert (
        decoder.generate(share_prefix=True, **gen).token_ids
        == decoder.generate(share_prefix=False, **gen).token_ids
    )
    if decoder.model.config.model_type == "gemma3":
        assert shared_tokens == full_tokens  # image blocks attend bidirectionally: no prefix to share
    else:
        assert shared_tokens < full_tokens
