"""Batched decoding across requests: every request of a batch against the same request decoded alone.

Exact means the same tokens, the same text and finish reason, and the same combined logits at every step
(to float tolerance), whatever else shares the batch: mixed N, modes and prompt lengths, sampling with
seeds, requests joining and leaving mid-flight, a row cap, cancellation, simulated out-of-memory errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from focus_integrations import FocusDecoder
from focus_integrations.batching import BatchRunner, Sink
from focus_integrations.testing import FAMILIES, tiny_checkpoint


def _images(n: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 30), (33, 47), (50, 50), (29, 41), (36, 36), (44, 31)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes[:n]]


class Recording:
    """Wraps a request's token chooser and keeps every combined vector it is shown."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: list[torch.Tensor] = []

    def __call__(self, combined: torch.Tensor, sequence: torch.Tensor) -> int:
        self.seen.append(combined.detach().clone())
        return self.inner(combined, sequence)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[Recording]]:
    """Every chooser made from now on, by the request's seed (each request below has its own seed)."""
    made: dict[int, list[Recording]] = {}
    original = FocusDecoder._chooser

    def recording_chooser(self: FocusDecoder, options: Any, *args: Any, **kwargs: Any) -> Recording:
        chooser = Recording(original(self, options, *args, **kwargs))
        made.setdefault(options.seed, []).append(chooser)
        return chooser

    monkeypatch.setattr(FocusDecoder, "_chooser", recording_chooser)
    return made


class Collected(Sink):
    def __init__(self) -> None:
        self.deltas: list[str] = []
        self.output: Any = None
        self.error: BaseException | None = None

    def delta(self, text: str) -> None:
        self.deltas.append(text)

    def done(self, output: Any) -> None:
        self.output = output

    def fail(self, error: BaseException) -> None:
        self.error = error


def _mixed_requests() -> list[dict[str, Any]]:
    long_prompt = "Look at every picture carefully and then describe the colours you can see in them. " * 2
    return [
        dict(images=_images(3, 1), prompt="Which image is red?", seed=11, max_new_tokens=12, alpha=0.3),
        dict(images=_images(2, 2), prompt=long_prompt, seed=12, max_new_tokens=3, mode="vanilla"),
        dict(images=_images(1, 3), prompt="One?", seed=13, max_new_tokens=9, mode="vcd"),
        dict(images=_images(2, 4), prompt="Compare them.", seed=14, max_new_tokens=8, repetition_penalty=1.4),
        dict(
            images=_images(4, 5),
            prompt="Pick one at random.",
            seed=15,
            max_new_tokens=7,
            do_sample=True,
            temperature=0.8,
            top_k=30,
        ),
        dict(  # a text-only turn (an agent step): one plain row among the image rows
            messages=[{"role": "user", "content": "Say something short."}],
            require_images=False,
            seed=16,
            max_new_tokens=5,
        ),
    ]


def _assert_same(decoder: FocusDecoder, request: dict, solo: Any, batched: Any, recorded: dict) -> None:
    assert batched.token_ids == solo.token_ids, request.get("prompt")
    assert (batched.text, batched.finish_reason, batched.usage) == (solo.text, solo.finish_reason, solo.usage)
    alone, together = recorded[request["seed"]]  # the solo chooser first, then the batched one
    assert len(alone.seen) == len(together.seen) == len(solo.token_ids)
    for step, (a, b) in enumerate(zip(alone.seen, together.seen)):
        torch.testing.assert_close(b, a, atol=2e-4, rtol=1e-4, msg=lambda m, step=step: f"step {step}: {m}")


@pytest.fixture(scope="module", params=FAMILIES)
def decoder(request: pytest.FixtureRequest) -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint(request.param), dtype="float32")


def test_requests_joining_and_leaving_mid_flight_decode_as_alone(decoder, recorded) -> None:
    requests = _mixed_requests()
    solo = [decoder.generate(**r) for r in requests]
    runner = BatchRunner(decoder, max_rows=64)
    sinks = [Collected() for _ in requests]
    most_active = 0

    def run(steps: int | None) -> None:
        nonlocal most_active
        count = 0
        while runner.has_work and (steps is None or count < steps):
            runner.run_once()
            most_active = max(most_active, runner.stats().active)
            count += 1

    with decoder._lock:
        for i in (0, 1):
            runner.submit(sinks[i], **requests[i])
        run(2)  # request 1 (3 tokens) is about to leave
        runner.submit(sinks[2], **requests[2])
        run(2)
        for i in (3, 4, 5):
            runner.submit(sinks[i], **requests[i])
        run(None)
    assert most_active >= 3
    assert runner.stats().rows_in_flight == 0 and runner._shared.cache is None
    for request, alone, sink in zip(requests, solo, sinks):
        assert sink.error is None
        _assert_same(decoder, request, alone, sink.output, recorded)
        assert "".join(sink.deltas) == alone.text


def test_generate_batch_equals_generate(decoder, recorded) -> None:
    requests = _mixed_requests()[:3]
    solo = [decoder.generate(**r) for r in requests]
    for request, alone, batched in zip(requests, solo, decoder.generate_batch(requests)):
        _assert_same(decoder, request, alone, batched, recorded)


# --------------------------------------------------------------------------------------------------------
# One family is enough for the scheduler's own behaviour (the per-family cache work is covered above).


@pytest.fixture(scope="module")
def qwen() -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"), dtype="float32")


def _rows_per_forward(decoder: FocusDecoder) -> tuple[list[tuple[int, int]], Any]:
    """(rows, tokens) of every forward pass, recorded by a hook; remove the returned handle when done."""
    seen: list[tuple[int, int]] = []

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None:
            seen.append(tuple(ids.shape))

    return seen, decoder.model.register_forward_pre_hook(hook, with_kwargs=True)


def test_a_step_writes_into_the_caches_room_instead_of_copying_it(qwen, recorded, monkeypatch) -> None:
    from focus_integrations import decode_batch

    monkeypatch.setattr(
        decode_batch, "ROOM", 3, raising=False
    )  # the buffer fills up (and moves) every 3 steps
    long_one = dict(images=_images(2, 9), prompt="Go on.", seed=19, max_new_tokens=24, min_new_tokens=24)
    requests = [*_mixed_requests(), long_one]
    solo = [qwen.generate(**r) for r in requests]
    runner = BatchRunner(qwen, max_rows=64)
    sinks = [Collected() for _ in requests]
    storage: list[tuple[int, int, int]] = []  # (members, keys' storage, cached positions) after each step
    with qwen._lock:
        for i, request in enumerate(requests):
            runner.submit(sinks[i], **request)
        while runner.has_work:
            runner.run_once()
            cache = runner._shared.cache
            if cache is not None:
                keys = cache.layers[0].keys
                storage.append(
                    (len(runner._shared.members), keys.untyped_storage().data_ptr(), keys.shape[2])
                )
    # Steps after the first one since the batch last changed (a join or a leave rebuilds the cache anyway):
    # they append in place, but for one move each time the room of 3 positions is used up.
    later = [
        (b, c)
        for a, b, c in zip(storage, storage[1:], storage[2:])
        if a[0] == b[0] == c[0] and b[2] == a[2] + 1 and c[2] == b[2] + 1
    ]
    moved = [pair for pair in later if pair[0][1] != pair[1][1]]
    assert len(later) >= 6 and len(moved) <= len(later) // 3
    for request, alone, sink in zip(requests, solo, sinks):  # moves, merges and cuts keep them exact
        assert sink.error is None
        _assert_same(qwen, request, alone, sink.output, recorded)


def test_sampling_with_seeds_each_request_keeps_its_own_generator(qwen, recorded) -> None:
    requests = [
        dict(
            images=_images(2, s), prompt=f"Tell me {s}.", seed=s, max_new_tokens=8, do_sample=True, top_p=0.9
        )
        for s in (21, 22, 23)
    ] + [dict(images=_images(3, 24), prompt="Greedy.", seed=24, max_new_tokens=8)]
    solo = [qwen.generate(**r) for r in requests]
    for request, alone, batched in zip(requests, solo, qwen.generate_batch(requests)):
        _assert_same(qwen, request, alone, batched, recorded)
    assert len({tuple(s.token_ids) for s in solo[:3]}) > 1  # the seeds really differ


def test_row_cap_bounds_every_forward_and_a_larger_request_runs_alone_in_groups(qwen, recorded) -> None:
    requests = [
        dict(images=_images(3, 31), prompt="a", seed=31, max_new_tokens=5),  # 4 rows
        dict(images=_images(2, 32), prompt="bb", seed=32, max_new_tokens=6),  # 3 rows
        dict(images=_images(6, 33), prompt="ccc", seed=33, max_new_tokens=4),  # 7 rows > cap: groups of 5
        dict(images=_images(1, 34), prompt="dddd", seed=34, max_new_tokens=5),  # 1 row
    ]
    solo = [qwen.generate(**r) for r in requests]
    seen, handle = _rows_per_forward(qwen)
    try:
        batched = qwen.generate_batch(requests, max_rows=5)
    finally:
        handle.remove()
    for request, alone, out in zip(requests, solo, batched):
        _assert_same(qwen, request, alone, out, recorded)
    steps = [rows for rows, tokens in seen if tokens == 1]
    assert max(steps) <= 5 and 5 in steps  # the 7-row request's first group
    assert 2 in steps  # ... and its second group


def test_row_chunk_size_of_a_request_is_kept_inside_a_batch(qwen, recorded) -> None:
    requests = [
        dict(images=_images(3, 41), prompt="x", seed=41, max_new_tokens=4, row_chunk_size=2),
        dict(images=_images(2, 42), prompt="y", seed=42, max_new_tokens=4),
    ]
    solo = [qwen.generate(**r) for r in requests]
    seen, handle = _rows_per_forward(qwen)
    try:
        batched = qwen.generate_batch(requests)
    finally:
        handle.remove()
    for request, alone, out in zip(requests, solo, batched):
        _assert_same(qwen, request, alone, out, recorded)
    assert max(rows for rows, tokens in seen if tokens == 1) <= 3


def test_out_of_memory_in_a_step_preempts_and_resumes_exactly(qwen, recorded) -> None:
    requests = [
        dict(images=_images(3, 51 + i), prompt="q" * (i + 1), seed=51 + i, max_new_tokens=7) for i in range(3)
    ]
    solo = [qwen.generate(**r) for r in requests]
    seen, handle = _rows_per_forward(qwen)

    def small_device(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1 and ids.shape[0] > 6:
            raise torch.OutOfMemoryError("simulated: at most 6 rows per step")

    oom = qwen.model.register_forward_pre_hook(small_device, with_kwargs=True)
    runner = BatchRunner(qwen, max_rows=16)
    sinks = [Collected() for _ in requests]
    try:
        with qwen._lock:
            for sink, request in zip(sinks, requests):
                runner.submit(sink, **request)
            while runner.has_work:
                runner.run_once()
    finally:
        oom.remove()
        handle.remove()
    assert runner.row_limit == 6  # 12 rows failed: halved
    for alone, sink in zip(solo, sinks):
        assert sink.error is None
        assert sink.output.token_ids == alone.token_ids and "".join(sink.deltas) == alone.text
        assert sink.output.text == alone.text
    assert any(rows == 12 for rows, tokens in seen if tokens == 1)  # the step that failed


def test_out_of_memory_in_a_prefill_halves_the_row_groups(qwen) -> None:
    request = dict(images=_images(4, 61), prompt="big", seed=61, max_new_tokens=5, share_prefix=False)
    alone = qwen.generate(**request)

    def small_device(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[0] > 2:
            raise torch.OutOfMemoryError("simulated: at most 2 rows")

    oom = qwen.model.register_forward_pre_hook(small_device, with_kwargs=True)
    try:
        (out,) = qwen.generate_batch([request])
    finally:
        oom.remove()
    assert out.token_ids == alone.token_ids


def test_failures_stay_with_their_request(qwen) -> None:
    from focus_integrations import InvalidOptionError, NoImageError

    good = dict(images=_images(2, 71), prompt="fine", seed=71, max_new_tokens=4)
    with pytest.raises(InvalidOptionError):  # options are checked before anything runs
        qwen.generate_batch([good, dict(good, alpha=-1)])
    for bad_cap in (0, -3, 2.5, True):
        with pytest.raises(InvalidOptionError):
            qwen.generate_batch([good], max_rows=bad_cap)
    with pytest.raises(InvalidOptionError):
        qwen.generate_batch([good], join="sometimes")
    bad = dict(messages=[{"role": "user", "content": "no image here"}])
    with pytest.raises(NoImageError):
        qwen.generate_batch([good, bad])
    out, error = qwen.generate_batch([good, bad], return_exceptions=True)
    assert isinstance(error, NoImageError)
    assert out.token_ids == qwen.generate(**good).token_ids


def test_join_batch_mode_waits_for_the_batch_to_drain(qwen) -> None:
    requests = [
        dict(images=_images(2, 80 + i), prompt="j" * (i + 2), seed=80 + i, max_new_tokens=3 + i)
        for i in range(3)
    ]
    solo = [qwen.generate(**r).token_ids for r in requests]
    runner = BatchRunner(qwen, max_rows=6, join="batch")  # room for two 3-row requests
    sinks = [Collected() for _ in requests]
    actives = []
    with qwen._lock:
        for sink, request in zip(sinks, requests):
            runner.submit(sink, **request)
        while runner.has_work:
            runner.run_once()
            actives.append(runner.stats().active)
    assert [s.output.token_ids for s in sinks] == solo
    # the third waits until BOTH of the first batch have finished, although there is room once one leaves
    assert actives[0] == 2 and 2 not in actives[actives.index(1) :]


# --------------------------------------------------------------------------------------------------------
# The threaded engine (what the server uses).


def test_engine_streams_concurrent_requests_exactly(qwen) -> None:
    import threading

    from focus_integrations.batching import BatchEngine

    requests = [
        dict(images=_images(1 + i % 3, 90 + i), prompt="s" * (3 * i + 1), seed=90 + i, max_new_tokens=4 + i)
        for i in range(5)
    ]
    solo = [qwen.generate(**r) for r in requests]
    results: dict[int, tuple[str, Any]] = {}
    with BatchEngine(qwen, max_rows=8) as engine:
        streams = [engine.submit(**r) for r in requests]

        def consume(i: int) -> None:
            results[i] = ("".join(streams[i]), streams[i].output)

        threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        stats = engine.stats()
    for i, alone in enumerate(solo):
        assert results[i][0] == alone.text and results[i][1].token_ids == alone.token_ids
    assert (stats.active, stats.queued, stats.rows_in_flight, stats.finished) == (0, 0, 0, 5)
    assert stats.tokens_generated == sum(len(s.token_ids) for s in solo)


def test_engine_close_of_a_stream_frees_its_rows_at_once(qwen) -> None:
    from focus_integrations.batching import BatchEngine

    # min_new_tokens: the long request cannot end (random weights) before it is closed.
    long = dict(images=_images(3, 95), prompt="go on", seed=95, max_new_tokens=400, min_new_tokens=400)
    other = dict(images=_images(2, 96), prompt="short", seed=96, max_new_tokens=12)
    expected = qwen.generate(**other)
    with BatchEngine(qwen) as engine:
        first = engine.submit(**long)
        next(first)
        second = engine.submit(**other)
        text = next(second)
        assert engine.stats().rows_in_flight == 4 + 3
        first.close(wait=True)
        assert engine.stats().rows_in_flight <= 3  # freed when close(wait=True) returns
        text += "".join(second)
    assert list(first) == []
    assert second.output.token_ids == expected.token_ids and text == expected.text


def test_engine_close_cancels_what_is_left(qwen) -> None:
    from focus_integrations import EngineClosedError
    from focus_integrations.batching import BatchEngine

    engine = BatchEngine(qwen)
    stream = engine.submit(images=_images(2, 97), prompt="x", seed=97, max_new_tokens=500)
    engine.close()
    with pytest.raises(EngineClosedError):
        list(stream)
    with pytest.raises(EngineClosedError):
        engine.submit(images=_images(2, 97), prompt="x")


def test_engine_close_from_another_thread_wakes_the_consumer(qwen) -> None:
    import threading
    import time

    from focus_integrations.batching import BatchEngine

    with BatchEngine(qwen) as engine:
        stream = engine.submit(
            images=_images(2, 98), prompt="on and on", seed=98, max_new_tokens=400, min_new_tokens=400
        )
        received: list[str] = []
        consumer = threading.Thread(target=lambda: received.extend(stream))
        consumer.start()
        while not received:  # the consumer is inside next(), waiting for the next delta
            consumer.join(timeout=0.05)
        started = time.monotonic()
        stream.close()  # returns at once (an event loop may call it) ...
        assert time.monotonic() - started < 0.5
        consumer.join(timeout=30)
        assert not consumer.is_alive()
        deadline = time.monotonic() + 30
        while engine.stats().rows_in_flight and time.monotonic() < deadline:  # ... rows freed at the boundary
            time.sleep(0.01)
        assert engine.stats().rows_in_flight == 0


def test_engine_waits_for_a_direct_call_longer_than_busy_timeout(qwen, monkeypatch) -> None:
    import time

    from focus_integrations.batching import BatchEngine

    monkeypatch.setattr(qwen, "busy_timeout", 0.05)  # for callers; the scheduler waits however long it takes
    request = dict(images=_images(2, 99), prompt="wait", seed=99, max_new_tokens=5)
    expected = qwen.generate(**request)
    with BatchEngine(qwen) as engine:
        solo = qwen.stream(**request)
        next(solo)  # this thread's stream holds the model now
        batched = engine.submit(**request)
        time.sleep(0.3)
        list(solo)
        assert solo.output.token_ids == expected.token_ids
        assert "".join(batched) == expected.text and batched.output.token_ids == expected.token_ids
        assert engine.stats().finished == 1


def test_stop_strings_and_end_tokens_end_each_request_on_its_own(qwen, monkeypatch, recorded) -> None:
    base = [
        dict(images=_images(3, 111), prompt="First, a long answer please.", seed=111, max_new_tokens=14),
        dict(images=_images(2, 112), prompt="Second.", seed=112, max_new_tokens=14),
        dict(images=_images(2, 113), prompt="Third one here.", seed=113, max_new_tokens=14),
    ]
    free = [qwen.generate(**r) for r in base]
    # A stop string inside the first answer, and an end token only the second answer contains.
    text = free[0].text
    stop = next(text[i : i + 2] for i in range(3, len(text) - 1) if "\ufffd" not in text[i : i + 2])
    others = set(free[0].token_ids) | set(free[2].token_ids)
    eos = next(t for t in free[1].token_ids[3:] if t not in others)
    ends = sorted(qwen.eos_token_ids | {eos})  # the end ids of each request (its eos_token_id option)
    requests = [dict(base[0], stop=[stop], eos_token_id=ends), dict(base[1], eos_token_id=ends), base[2]]
    recorded.clear()
    solo = [qwen.generate(**r) for r in requests]
    assert solo[0].finish_reason == "stop" and solo[0].stop_sequence == stop
    assert solo[0].text == text[: text.find(stop)]
    assert solo[1].finish_reason == "stop" and solo[1].token_ids[-1] == eos
    assert solo[2].finish_reason == "length" and solo[2].token_ids == free[2].token_ids
    for request, alone, batched in zip(requests, solo, qwen.generate_batch(requests)):
        _assert_same(qwen, request, alone, batched, recorded)
        assert batched.stop_sequence == alone.stop_sequence
