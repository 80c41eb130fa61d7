"""Streaming, stop strings, the out-of-memory fallback to row groups, and concurrent calls."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from focus_integrations import FocusDecoder
from focus_integrations.testing.tiny_models import tiny_checkpoint


@pytest.fixture(scope="module")
def decoder() -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"))


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (30 + i, 28, 3), dtype=np.uint8)) for i in range(n)]


ASK = dict(prompt="Describe image 2.", seed=5, max_new_tokens=12)


def test_stream_deltas_add_up_to_the_generated_text(decoder) -> None:
    full = decoder.generate(images=_images(3), **ASK)
    stream = decoder.stream(images=_images(3), **ASK)
    deltas = list(stream)
    assert "".join(deltas) == full.text == stream.output.text
    assert stream.output.token_ids == full.token_ids
    assert stream.output.usage.output_tokens == len(full.token_ids)
    assert stream.output.usage.input_tokens > 0


def test_stop_string_ends_generation_early(decoder) -> None:
    full = decoder.generate(images=_images(2), **ASK)
    text = full.text
    if len(text) < 4:
        pytest.skip(f"random tiny model produced too little text to cut: {text!r}")
    stop = text[2:4]
    cut = decoder.generate(images=_images(2), stop=[stop], **ASK)
    assert cut.text == text[: text.find(stop)]
    assert cut.finish_reason == "stop" and cut.stop_sequence == stop
    assert len(cut.token_ids) < len(full.token_ids) or full.finish_reason == "stop"


def test_out_of_memory_retries_in_smaller_row_groups(decoder) -> None:
    # The fallback covers the prefill, where memory peaks; the batched prefill (no shared prefix) is the one
    # that can run out with all rows at once.
    ask = ASK | {"share_prefix": False}
    expected = decoder.generate(images=_images(4), **ask)
    batches: list[int] = []

    def fake_small_device(module, args, kwargs):
        rows = kwargs["input_ids"].shape[0] if kwargs.get("input_ids") is not None else 0
        batches.append(rows)
        if rows > 2:
            raise torch.OutOfMemoryError("simulated: only 2 rows fit")

    handle = decoder.model.register_forward_pre_hook(fake_small_device, with_kwargs=True)
    try:
        got = decoder.generate(images=_images(4), **ask)
    finally:
        handle.remove()
    assert got.token_ids == expected.token_ids
    assert 5 in batches and max(batches[batches.index(5) + 1 :]) <= 2


def test_concurrent_calls_on_one_decoder_are_serialised(decoder) -> None:
    prompts = [f"Question {i} about the images?" for i in range(4)]
    sequential = [
        decoder.generate(images=_images(2), prompt=p, seed=2, max_new_tokens=6).token_ids for p in prompts
    ]
    results: dict[int, list[int]] = {}

    def worker(i: int) -> None:
        results[i] = decoder.generate(
            images=_images(2), prompt=prompts[i], seed=2, max_new_tokens=6
        ).token_ids

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [results[i] for i in range(4)] == sequential


def test_an_abandoned_stream_releases_the_decoder(decoder) -> None:
    stream = decoder.stream(images=_images(2), **ASK)
    next(stream, None)
    stream.close()
    assert decoder.generate(images=_images(2), **ASK).text is not None


def test_text_only_turns_decode_plainly_when_allowed(decoder) -> None:
    from focus_integrations import NoImageError

    messages = [{"role": "user", "content": "Hello there, how are you?"}]
    with pytest.raises(NoImageError):
        decoder.generate(messages=messages)
    # An image request first: Qwen keeps its rope offsets on the model; a text-only prefill must not reuse them.
    decoder.generate(images=_images(3), prompt="q", max_new_tokens=2)
    out = decoder.generate(messages=messages, require_images=False, max_new_tokens=6)
    assert out.settings["n_images"] == 0 and out.settings["rule"] == "vanilla"
    inputs = decoder.processor(
        text=[decoder.render_prompt(messages)], return_tensors="pt", add_special_tokens=False
    )
    expected = decoder.model.generate(
        **inputs, do_sample=False, max_new_tokens=6, bad_words_ids=[[i] for i in decoder.banned_token_ids]
    )[0, inputs["input_ids"].shape[1] :].tolist()
    assert out.token_ids == expected[: len(out.token_ids)]


def test_assistant_prefix_is_continued_not_repeated(decoder) -> None:
    prefix = '<tool_call>\n{"name": "'
    out = decoder.generate(images=_images(2), assistant_prefix=prefix, **ASK)
    first = decoder.tokenizer.decode(out.token_ids[:1])
    logps = decoder.score(
        images=_images(2), prompt=ASK["prompt"], seed=ASK["seed"], assistant_prefix=prefix, candidates=[first]
    )
    others = decoder.score(
        images=_images(2),
        prompt=ASK["prompt"],
        seed=ASK["seed"],
        assistant_prefix=prefix,
        candidates=["zzz", "!"],
    )
    assert logps[0] >= max(others)  # greedy picked the most likely continuation of the prefix
    assert not out.text.startswith(prefix)
    assert out.usage.input_tokens > decoder.generate(images=_images(2), **ASK).usage.input_tokens


def test_every_use_of_the_tokenizer_holds_the_processor_lock(decoder, monkeypatch) -> None:
    # A batch engine's submissions encode on their own threads under processor_lock (fast tokenizers are not
    # thread-safe); a direct call that tokenises without it could run inside one of those encodes.
    tokenizer = decoder.tokenizer
    unlocked: list[str] = []

    class Watched:
        def __getattr__(self, name):
            return getattr(tokenizer, name)

        def __call__(self, text, *args, **kwargs):
            if not decoder.processor_lock.locked():
                unlocked.append(text if isinstance(text, str) else repr(text))
            return tokenizer(text, *args, **kwargs)

    monkeypatch.setattr(decoder, "tokenizer", Watched())
    decoder.score(images=_images(2), prompt="Which image is red?", candidates=["A", "B"], mode="focus")
    decoder.count_tokens("a short text")
    assert unlocked == []
