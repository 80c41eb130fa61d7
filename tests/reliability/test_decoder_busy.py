"""The decoder's lock: a same-thread second call fails fast with DecoderBusyError instead of deadlocking."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from focus_integrations import DecoderBusyError, FocusDecoder, FocusError, InvalidOptionError
from focus_integrations.testing.tiny_models import tiny_checkpoint


@pytest.fixture(scope="module")
def decoder() -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"))


IMAGES = [Image.fromarray(np.full((28, 28, 3), 60 * i, dtype=np.uint8)) for i in range(2)]
ASK = dict(images=IMAGES, prompt="Which is brighter?", seed=3, max_new_tokens=6)


def _in_thread(call, limit: float = 30.0):
    """Run ``call`` in a daemon thread: returns (result or exception, seconds); a hang fails the test."""
    box: dict = {}

    def target() -> None:
        start = time.monotonic()
        try:
            box["value"] = call()
        except BaseException as err:  # noqa: BLE001 - the test inspects it
            box["value"] = err
        box["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"call still blocked after {limit} s (deadlock)"
    return box["value"], box["seconds"]


def test_second_call_from_the_thread_holding_an_open_stream_raises_at_once(decoder) -> None:
    def same_thread_twice():
        stream = decoder.stream(**ASK)
        next(stream)  # the stream now holds the decoder
        try:
            return decoder.generate(**ASK)
        finally:
            stream.close()

    value, seconds = _in_thread(same_thread_twice)
    assert isinstance(value, DecoderBusyError) and isinstance(value, FocusError), value
    assert "close()" in str(value) and seconds < 10
    assert not decoder.busy  # closing the stream released it
    assert decoder.generate(**ASK).text == decoder.generate(**ASK).text  # and the decoder still works


def test_score_and_a_second_stream_in_the_same_thread_are_refused_too(decoder) -> None:
    def refused_calls():
        stream = decoder.stream(**ASK)
        next(stream)
        errors = []
        for call in (
            lambda: decoder.score(**ASK | {"candidates": ["a", "b"]}),
            lambda: next(decoder.stream(**ASK)),
        ):
            try:
                call()
            except DecoderBusyError as err:
                errors.append(err)
        list(stream)  # finishing it releases the decoder
        errors.append(decoder.generate(**ASK))
        return errors

    value, _ = _in_thread(refused_calls)
    assert [type(v) for v in value[:2]] == [DecoderBusyError, DecoderBusyError]
    assert value[2].text is not None


def test_another_thread_waits_by_default_and_busy_timeout_bounds_the_wait(decoder) -> None:
    stream = decoder.stream(**ASK)
    next(stream)
    try:
        decoder.busy_timeout = 0.3
        value, seconds = _in_thread(lambda: decoder.generate(**ASK))
        assert isinstance(value, DecoderBusyError) and "busy_timeout" in str(value)
        assert 0.25 <= seconds < 5
        decoder.busy_timeout = None
        waiter = threading.Thread(target=lambda: decoder.generate(**ASK), daemon=True)
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive()  # waits for the other thread's stream: no error
    finally:
        decoder.busy_timeout = None
        stream.close()
    waiter.join(30)
    assert not waiter.is_alive()


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5", True])
def test_bad_busy_timeout_is_an_invalid_option(decoder, bad) -> None:
    with pytest.raises(InvalidOptionError, match="busy_timeout"):
        FocusDecoder(decoder.model, decoder.processor, busy_timeout=bad)
