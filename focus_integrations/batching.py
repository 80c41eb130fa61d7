"""Batched decoding across requests, for servers and offline batches (the scheduler is ``scheduler.py``).

- ``BatchEngine(decoder, max_rows=64, join="step")``: a background thread decodes every submitted request
  together, one forward pass per step; ``submit(**kwargs of FocusDecoder.stream)`` returns a
  :class:`BatchStream` at once (bad input raises there), ``stats()``, ``close()``.
- ``run_batch(decoder, requests, ...)``: the same scheduler on the caller's thread, to the end
  (``FocusDecoder.generate_batch``).

Every request gets exactly the answer it gets decoded alone (docs/engine.md, "Batched decoding across
requests").
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from focus_integrations.errors import EngineClosedError, FocusError, PromptError
from focus_integrations.scheduler import (
    DEFAULT_MAX_ROWS,
    JOIN_MODES,
    BatchRunner,
    EngineStats,
    Job,
    Sink,
)

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.outputs import GenerationOutput

__all__ = [
    "DEFAULT_MAX_ROWS",
    "JOIN_MODES",
    "BatchEngine",
    "BatchRunner",
    "BatchStream",
    "DeltaQueue",
    "EngineStats",
    "Job",
    "Sink",
    "run_batch",
]

logger = logging.getLogger(__name__)


def run_batch(
    decoder: FocusDecoder,
    requests: Sequence[dict[str, Any]],
    *,
    max_rows: int | None = None,
    join: str = "step",
    return_exceptions: bool = False,
) -> list[Any]:
    """Decode ``requests`` (dicts of ``generate`` arguments) together on this thread; see ``generate_batch``."""

    class Collect(Sink):
        def __init__(self) -> None:
            self.result: Any = None

        def done(self, output: GenerationOutput) -> None:
            self.result = output

        def fail(self, error: BaseException) -> None:
            self.result = error
            failures.append(error)

    if isinstance(requests, (str, bytes, dict)) or not isinstance(requests, Sequence):
        raise PromptError(f"requests must be a list of dicts of generate() arguments, got {requests!r}"[:300])
    failures: list[BaseException] = []
    jobs: list[Any] = []  # a job, or (return_exceptions) the error that refused its request
    for index, request in enumerate(requests):
        try:
            if not isinstance(request, dict):
                raise PromptError(f"request {index} must be a dict of generate() arguments, got {request!r}")
            kwargs = dict(request)
            jobs.append(
                decoder._batch_job(kwargs.pop("images", None), kwargs.pop("prompt", None), kwargs, Collect())
            )
        except FocusError as err:  # refused before it starts (an option, a message): alone, as when decoding
            if not return_exceptions:
                raise
            jobs.append(err)
    runner = BatchRunner(decoder, max_rows=DEFAULT_MAX_ROWS if max_rows is None else max_rows, join=join)
    for job in jobs:
        if not isinstance(job, BaseException):
            runner.add(job)
    with decoder._hold():
        while runner.has_work:
            runner.run_once()
            if failures and not return_exceptions:
                runner.shutdown(failures[0])
                raise failures[0]
    return [job if isinstance(job, BaseException) else job.sink.result for job in jobs]


_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class DeltaQueue(Sink):
    """A request's text deltas handed from the decoding thread to any consumer thread.

    Iterating blocks until the next delta and raises the request's error if it failed; ``output`` holds the
    :class:`GenerationOutput` once exhausted. The decoding side calls the :class:`Sink` methods. Both
    server engines (batched and serial) hand their requests' text over through this one class.
    """

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._output: GenerationOutput | None = None
        self._ended = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._ended:
            raise StopIteration
        item = self._items.get()
        if item is _END:
            self._ended = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._ended = True
            raise item.error
        return item

    @property
    def output(self) -> GenerationOutput:
        if self._output is None:
            raise RuntimeError("the stream has not finished yet: iterate it to the end first")
        return self._output

    def end(self) -> None:
        """Stop iterating now (after a cancel); wakes a consumer blocked in ``next()`` on another thread."""
        self._ended = True
        self._items.put(_END)

    # Sink: called on the decoding thread.
    def delta(self, text: str) -> None:
        self._items.put(text)

    def done(self, output: GenerationOutput) -> None:
        self._output = output
        self._items.put(_END)

    def fail(self, error: BaseException) -> None:
        self._items.put(_Failure(error))


class BatchStream(DeltaQueue):
    """The text deltas of one request of a :class:`BatchEngine`, for any thread to iterate.

    Iterating blocks until the next delta; it raises the request's error if it failed. ``output`` holds the
    :class:`GenerationOutput` once exhausted. ``close()`` cancels the request (its rows, or its place in
    the queue, are freed at the next step boundary).
    """

    def __init__(self, engine: BatchEngine, job: Job) -> None:
        super().__init__()
        self._engine = engine
        self._job = job

    @property
    def rows(self) -> int:
        """Rows this request decodes (N + 1 for FOCUS over N images, 2 for VCD, else 1)."""
        return self._job.rows

    def close(self, wait: bool = False) -> None:
        """Cancel the request. Its place in the queue, or its rows, are freed at the engine's next step
        boundary (within one decode step or prefill); ``wait=True`` returns only once they are. Never
        blocks otherwise, so an event loop may call it."""
        if not self._job.released.is_set():
            self._engine._cancel(self._job, wait)
        self.end()


class BatchEngine:
    """Continuous batching for servers: a background thread decodes every submitted request together.

    ``submit(**kwargs of FocusDecoder.stream)`` returns a :class:`BatchStream` at once; the CPU work (chat
    template, noise, processor, context check) runs there, so bad input raises there. ``stats()`` is a
    snapshot (:class:`EngineStats`); ``close()`` cancels what is left and stops the thread. While an engine
    runs, the decoder's own ``generate``/``stream`` calls wait for its current step (they share the lock).
    """

    def __init__(
        self, decoder: FocusDecoder, *, max_rows: int = DEFAULT_MAX_ROWS, join: str = "step"
    ) -> None:
        self.decoder = decoder
        self._runner = BatchRunner(decoder, max_rows=max_rows, join=join)
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="focus-batch-engine", daemon=True)
        self._thread.start()

    def submit(self, images: Any = None, prompt: str | None = None, **kwargs: Any) -> BatchStream:
        """Queue one request (the arguments of ``FocusDecoder.stream``); its stream, at once."""
        if self._closed:
            raise EngineClosedError("the engine is closed")
        job = self.decoder._batch_job(images, prompt, kwargs)
        job.prepare()  # the CPU work here, on the caller's thread: bad input raises now
        stream = BatchStream(self, job)
        job.sink = stream
        with self._wake:
            if self._closed:
                raise EngineClosedError("the engine is closed")
            self._runner.add(job)
            self._wake.notify()
        return stream

    @property
    def join(self) -> str:
        """When new requests join: ``"step"`` (at the next step) or ``"batch"`` (once the batch drained)."""
        return self._runner.join

    def stats(self) -> EngineStats:
        return self._runner.stats()

    def close(self) -> None:
        """Cancel every queued and running request (their streams raise ``EngineClosedError``); stop."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def __enter__(self) -> BatchEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _cancel(self, job: Job, wait: bool) -> None:
        self._runner.cancel(job)
        with self._wake:
            self._wake.notify()
        while wait and not job.released.wait(timeout=0.5):
            if not self._thread.is_alive():
                return

    def _loop(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._closed and not self._runner.has_work:
                        self._wake.wait()
                    if self._closed:
                        break
                # One model object: decoder calls and engine steps take turns. timeout=-1: the engine waits
                # for a direct call however long it runs (busy_timeout is for callers, not the scheduler).
                with self.decoder._hold(timeout=-1):
                    try:
                        self._runner.run_once()
                    except Exception as err:  # a defect, not a request's fault: end what runs, keep serving
                        logger.exception("the batch engine's scheduler failed")
                        self._runner.shutdown(err)
        finally:
            self._runner.shutdown(EngineClosedError("the engine was closed before this request finished"))
