"""Per-token log-probabilities (logprobs=True / top_logprobs=k) under the combined rule, against the slow
uncached reference, for greedy and sampled answers, alone and in a batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from focus_integrations import FocusDecoder, InvalidOptionError
from focus_integrations.testing.tiny_models import tiny_checkpoint

from .reference import (
    encode_one_row,
    focus_by_hand,
    reference_focus_greedy,
    render,
    row_images,
    uncached_last_logits,
)

PROMPT = "Which image shows the red shape?"


@pytest.fixture(scope="module")
def decoder() -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"), dtype="float32")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for w, h in ((40, 30), (33, 47), (50, 50))
    ]


def _reference_steps(
    decoder: FocusDecoder, images, tokens: list[int], *, alpha: float, seed: int
) -> list[torch.Tensor]:
    """log_softmax of the hand-combined FOCUS logits before each of ``tokens`` (teacher forcing, no cache)."""
    text, add_special = render(decoder.processor, images, PROMPT)
    rows = [encode_one_row(decoder.processor, text, imgs, add_special) for imgs in row_images(images, seed)]
    steps = []
    for t in range(len(tokens)):
        z = [uncached_last_logits(decoder.model, row, tokens[:t]) for row in rows]
        steps.append(torch.log_softmax(focus_by_hand(z, alpha, decoder.banned_token_ids), dim=-1))
    return steps


def test_greedy_logprobs_and_top_logprobs_equal_the_reference(decoder: FocusDecoder, images) -> None:
    out = decoder.generate(images=images, prompt=PROMPT, alpha=0.3, seed=7, max_new_tokens=5, top_logprobs=3)
    expected, combined = reference_focus_greedy(
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
    assert out.logprobs is not None and [e.token_id for e in out.logprobs] == out.token_ids
    for entry, z in zip(out.logprobs, combined):
        reference = torch.log_softmax(z, dim=-1)
        assert entry.logprob == pytest.approx(float(reference[entry.token_id]), abs=1e-4)
        values, ids = torch.topk(reference, 3)
        assert [i for i, _, _ in entry.top] == ids.tolist()
        assert [lp for _, _, lp in entry.top] == pytest.approx(values.tolist(), abs=1e-4)
        assert entry.top[0][0] == entry.token_id  # greedy picks the likeliest token
        assert entry.token == decoder.tokenizer.decode([entry.token_id])


def test_sampled_logprobs_are_the_rule_s_own_not_the_sampler_s(decoder: FocusDecoder, images) -> None:
    options = dict(
        alpha=0.3,
        seed=3,
        max_new_tokens=5,
        do_sample=True,
        temperature=0.7,
        top_k=5,
        repetition_penalty=1.3,
        logprobs=True,
    )
    out = decoder.generate(images=images, prompt=PROMPT, **options)
    steps = _reference_steps(decoder, images, out.token_ids, alpha=0.3, seed=3)
    got = [entry.logprob for entry in out.logprobs]
    assert got == pytest.approx([float(s[t]) for s, t in zip(steps, out.token_ids)], abs=1e-4)
    assert all(entry.top == () for entry in out.logprobs)  # logprobs=True alone: the chosen tokens only
    # Asking for them does not change the answer.
    assert (
        decoder.generate(images=images, prompt=PROMPT, **{**options, "logprobs": False}).token_ids
        == out.token_ids
    )


def test_off_by_default_and_the_same_in_a_batch(decoder: FocusDecoder, images) -> None:
    assert decoder.generate(images=images, prompt=PROMPT, seed=1, max_new_tokens=3).logprobs is None
    requests = [
        dict(images=images, prompt=PROMPT, seed=1, max_new_tokens=4, top_logprobs=2),
        dict(images=images[:2], prompt="Colour?", seed=2, max_new_tokens=3, logprobs=True),
    ]
    batched = decoder.generate_batch(requests)
    for request, output in zip(requests, batched):
        alone = decoder.generate(**request)
        assert output.token_ids == alone.token_ids
        assert [(e.token_id, e.top and [i for i, _, _ in e.top]) for e in output.logprobs] == [
            (e.token_id, e.top and [i for i, _, _ in e.top]) for e in alone.logprobs
        ]
        assert [e.logprob for e in output.logprobs] == pytest.approx(
            [e.logprob for e in alone.logprobs], abs=1e-4
        )


@pytest.mark.parametrize(
    "bad", [{"top_logprobs": 21}, {"top_logprobs": -1}, {"top_logprobs": True}, {"logprobs": "yes"}]
)
def test_bad_values_are_option_errors(decoder: FocusDecoder, images, bad) -> None:
    with pytest.raises(InvalidOptionError):
        decoder.generate(images=images, prompt=PROMPT, **bad)
