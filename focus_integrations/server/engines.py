"""The small interface the server decodes through, and the lock-serial engine that satisfies it.

An engine takes requests (the keyword arguments of ``FocusDecoder.stream``) and returns a stream at once:

    stream = engine.submit(messages=..., tools=..., max_new_tokens=...)   # validation errors raise here
    for delta in stream: ...        # text deltas, blocking; raises the decode's error if it fails
    stream.output                   # GenerationOutput, once exhausted
    stream.close()                  # from any thread: cancel, free its place (queued) or rows (decoding)
    engine.stats()                  # EngineStats: queued, active, rows in flight, tokens generated
    engine.close()

``SerialEngine`` decodes one request at a time in submission order, on one worker thread (what a
``FocusDecoder`` alone does, behind its lock). ``focus_integrations.batching.BatchEngine`` decodes many
requests in one batch; ``make_engine`` picks one by name.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from focus_integrations.batching import DeltaQueue
from focus_integrations.errors import InvalidOptionError

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder, TextStream
    from focus_integrations.outputs import GenerationOutput


DEFAULT_JOIN = "step"  # measured better than "batch" at the 8-client target (docs/benchmarks.md, serving)


@dataclass(frozen=True)
class EngineStats:
    queued: int = 0  # submitted, not decoding yet
    active: int = 0  # decoding now
    rows_in_flight: int = 0  # prompt copies being decoded (N + 1 per FOCUS request with N images)
    tokens_generated: int = 0  # since the engine started


class EngineStream(Protocol):
    def __iter__(self) -> Iterator[str]: ...

    def __next__(self) -> str: ...

    @property
    def output(self) -> GenerationOutput: ...

    def close(self) -> None: ...


class Engine(Protocol):
    decoder: FocusDecoder

    def submit(self, **request: Any) -> EngineStream: ...

    def stats(self) -> EngineStats: ...

    def close(self) -> None: ...


def as_engine_stats(raw: Any) -> EngineStats:
    """An engine's ``stats()`` (EngineStats, a dataclass or a dict with those keys) as :class:`EngineStats`."""
    if isinstance(raw, EngineStats):
        return raw
    if dataclasses.is_dataclass(raw) and not isinstance(raw, type):
        raw = dataclasses.asdict(raw)
    if not isinstance(raw, dict):
        raw = {name: getattr(raw, name, 0) for name in EngineStats.__dataclass_fields__}
    aliases = {"queued_requests": "queued", "active_requests": "active", "rows": "rows_in_flight"}
    values = {aliases.get(k, k): v for k, v in raw.items()}
    return EngineStats(**{k: int(values.get(k, 0) or 0) for k in EngineStats.__dataclass_fields__})


class _SerialStream(DeltaQueue):
    """One request of a :class:`SerialEngine`: the worker produces its deltas, any thread consumes them."""

    def __init__(self, text_stream: TextStream, rows: int) -> None:
        super().__init__()
        self.text_stream = text_stream
        self.rows = rows
        self.cancelled = threading.Event()

    def close(self) -> None:
        self.cancelled.set()
        self.end()


class SerialEngine:
    """Requests decoded one after another, in submission order, by one worker thread."""

    def __init__(self, decoder: FocusDecoder) -> None:
        self.decoder = decoder
        self._queue: collections.deque[_SerialStream] = collections.deque()
        self._wake = threading.Condition()
        self._active: _SerialStream | None = None
        self._tokens = 0
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="focus-serial-engine", daemon=True)
        self._worker.start()

    def submit(self, **request: Any) -> _SerialStream:
        text_stream = self.decoder.stream(**request)  # validates options and messages now, in the caller
        stream = _SerialStream(text_stream, _rows_of(text_stream))
        with self._wake:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self._queue.append(stream)
            self._wake.notify()
        return stream

    def stats(self) -> EngineStats:
        with self._wake:
            active = self._active
            return EngineStats(
                queued=sum(not s.cancelled.is_set() for s in self._queue),
                active=int(active is not None),
                rows_in_flight=active.rows if active is not None else 0,
                tokens_generated=self._tokens + (_tokens_of(active) if active is not None else 0),
            )

    def close(self) -> None:
        with self._wake:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._wake.notify()
        for stream in pending:
            stream.fail(RuntimeError("the engine was closed"))
        if self._active is not None:
            self._active.cancelled.set()
        self._worker.join(timeout=30)

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                stream = self._queue.popleft()
                if stream.cancelled.is_set():
                    continue
                self._active = stream
            try:
                self._decode(stream)
            finally:
                with self._wake:  # one update: stats never count the request's tokens twice or not at all
                    self._tokens += _tokens_of(stream)
                    self._active = None

    def _decode(self, stream: _SerialStream) -> None:
        text_stream = stream.text_stream
        try:
            for delta in text_stream:
                if stream.cancelled.is_set():
                    return
                stream.delta(delta)
            output = text_stream.output
        except BaseException as exc:  # handed to the consumer, which raises it
            stream.fail(exc)
            return
        finally:
            text_stream.close()  # releases the decoder at once, also when cancelled
        stream.done(output)


def _tokens_of(stream: _SerialStream) -> int:
    """Tokens the request has generated so far (finished, cancelled or still decoding)."""
    return int(getattr(stream.text_stream, "tokens_generated", 0))


def _rows_of(text_stream: TextStream) -> int:
    """Rows the request decodes (for the rows-in-flight gauge): N + 1 for FOCUS, 2 for VCD, else 1."""
    from focus_integrations.logits import build_rule

    # The stream's prepared conversation and resolved options (set by FocusDecoder.stream).
    images = len(getattr(getattr(text_stream, "_conversation", None), "images", ()) or ())
    options = getattr(text_stream, "_options", None)
    return build_rule(options, images).n_rows if options is not None else 1


def make_engine(
    decoder: FocusDecoder,
    kind: str = "batched",
    *,
    max_rows: int | None = None,
    join: str | None = None,
) -> Engine:
    """``"batched"``: requests share each forward pass (``BatchEngine``); ``"serial"``: one at a time.

    ``join`` (batched only): ``"step"`` (the default: a new request joins the running batch at the next
    step) or ``"batch"`` (it waits until the running batch has drained); see docs/serving.md.
    """
    if kind == "serial":
        if join is not None:
            raise InvalidOptionError("join applies to the batched engine only")
        return SerialEngine(decoder)
    if kind == "batched":
        try:
            from focus_integrations.batching import BatchEngine
        except ImportError as err:
            raise InvalidOptionError(
                f"the batched engine is not available in this installation ({err}); use engine='serial'"
            ) from None
        kwargs: dict[str, Any] = {"max_rows": max_rows} if max_rows is not None else {}
        return BatchEngine(decoder, join=join or DEFAULT_JOIN, **kwargs)
    raise InvalidOptionError(f"unknown engine {kind!r}; choose one of batched, serial")


def engine_kind(engine: Engine) -> str:
    """``"batched"``, ``"serial"`` or the engine's class name (shown by ``/health``)."""
    name = type(engine).__name__
    return {"BatchEngine": "batched", "SerialEngine": "serial"}.get(name, name)


def batched_engine_available() -> bool:
    try:
        import focus_integrations.batching  # noqa: F401
    except ImportError:
        return False
    return True
