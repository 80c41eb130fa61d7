"""The engine contract the server relies on, for both engines (``make_engine``: batched and serial).

``submit`` raises bad input at once; a stream read on one thread can be closed from another, which wakes the
blocked reader and frees the request's rows; ``stats()`` reports what the server's /metrics show.
"""

from __future__ import annotations

import threading
import time

import pytest

from focus_integrations.errors import InvalidOptionError, UnsupportedSchemaError
from focus_integrations.server.engines import as_engine_stats, make_engine
from tests.server.conftest import two_image_request, wait_for

LONG = 4000  # tokens asked for: far more than any test waits for


@pytest.fixture(params=["batched", "serial"])
def engine(request: pytest.FixtureRequest, reference_decoder):
    engine = make_engine(reference_decoder, request.param)
    yield engine
    engine.close()


def test_submit_raises_bad_input_at_once(engine) -> None:
    with pytest.raises(InvalidOptionError, match="alpha"):
        engine.submit(**two_image_request(), alpha=-1)
    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}}
    with pytest.raises(UnsupportedSchemaError):
        engine.submit(**two_image_request(), response_format=bad_schema)
    with pytest.raises(InvalidOptionError, match="unsupported content type"):
        engine.submit(messages=[{"role": "user", "content": [{"type": "nonsense"}]}], require_images=False)
    stats = as_engine_stats(engine.stats())
    assert (stats.queued, stats.active, stats.rows_in_flight) == (0, 0, 0)


def test_close_from_another_thread_wakes_the_reader_and_frees_the_rows(engine) -> None:
    stream = engine.submit(**two_image_request(), max_new_tokens=LONG)
    deltas = [next(stream)]  # decoding now
    wait_for(lambda: as_engine_stats(engine.stats()).rows_in_flight == 3)  # FOCUS over 2 images: 3 rows
    reader_done = threading.Event()

    def read() -> None:
        deltas.extend(stream)  # blocks between deltas; must return once the stream is closed
        reader_done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)
    threading.Thread(target=stream.close, daemon=True).start()
    assert reader_done.wait(timeout=15), "close() from another thread left the reader blocked"
    wait_for(lambda: as_engine_stats(engine.stats()).active == 0, timeout=10)
    stats = as_engine_stats(engine.stats())
    assert stats.rows_in_flight == 0 and stats.queued == 0
    assert stats.tokens_generated < LONG
    with pytest.raises(RuntimeError, match="not finished"):
        _ = stream.output  # cancelled, not finished
    # The engine goes on serving.
    after = engine.submit(**two_image_request(), max_new_tokens=3)
    assert "".join(after) == after.output.text and after.output.usage.output_tokens == 3


def test_stats_count_queued_active_rows_and_tokens(engine) -> None:
    first = engine.submit(**two_image_request(), max_new_tokens=LONG)
    next(first)
    second = engine.submit(prompt="Hello", require_images=False, max_new_tokens=LONG, mode="vanilla")
    try:
        wait_for(lambda: as_engine_stats(engine.stats()).tokens_generated > 2)
        stats = as_engine_stats(engine.stats())
        # Batched: both decode together (3 + 1 rows); serial: one decodes, the other waits.
        assert (stats.active, stats.queued, stats.rows_in_flight) in ((2, 0, 4), (1, 1, 3))
    finally:
        first.close()
        second.close()
    wait_for(lambda: as_engine_stats(engine.stats()).active == 0, timeout=10)
