"""The scheduler of batched decoding: many requests, each with its own N+1 rows, in one forward per step.

``BatchRunner`` is synchronous: each ``run_once()`` drops cancelled requests, admits waiting ones at the step
boundary (each is prefilled on its own, exactly as when decoded alone, then its rows join the running batch:
``decode_batch.DecodeBatch``), and runs one step for every running request. Each request keeps its own rule,
token chooser (own generator), sequence, stop strings and token budget (``answer.Answer``), so its tokens are
the ones it gets decoded alone. A finished request leaves at once and frees its rows.

- ``max_rows`` caps the rows in flight (memory). A request with more rows than the cap (or than its own
  ``row_chunk_size``) runs by itself, in row groups, once the batch has drained, as ``FocusDecoder`` does.
- Out of memory during a prefill: with other requests running, the row cap is halved and the request waits;
  alone, its row groups are halved. During a step: every running request is preempted (its rows dropped,
  its answer kept), the cap is halved (or, for a request running alone, its row groups), and each resumes by
  re-prefilling its prompt plus the tokens it already has. Nothing already streamed changes.
- ``join="step"`` (continuous batching) admits new requests at every step boundary; ``join="batch"``
  admits only when the batch is empty.

Who drives it: ``batching.BatchEngine`` (a background thread, for servers) and ``batching.run_batch`` (the
caller's thread: ``FocusDecoder.generate_batch``).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from focus_integrations.decode import RowGroup, prefill_logits
from focus_integrations.decode_batch import DecodeBatch, can_batch
from focus_integrations.errors import InvalidOptionError
from focus_integrations.model_facts import empty_device_cache

if TYPE_CHECKING:
    from focus_integrations.answer import Answer
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.outputs import GenerationOutput
    from focus_integrations.request import PreparedRequest

logger = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 64
JOIN_MODES = ("step", "batch")


class Sink:
    """Where a request's results go (called on the decoding thread)."""

    def delta(self, text: str) -> None: ...

    def done(self, output: GenerationOutput) -> None: ...

    def fail(self, error: BaseException) -> None: ...


class Job:
    """One request in a runner: its prepared inputs, its answer so far, where its text goes.

    ``prepare`` does the CPU work (template, noise, processor) and makes the answer's token chooser; a
    server runs it at submission (bad input fails there), an offline batch when the request is admitted.
    """

    def __init__(
        self, prepare: Callable[[], tuple[PreparedRequest, Answer]], sink: Sink | None = None
    ) -> None:
        self.sink: Sink = sink or Sink()
        self.request: PreparedRequest | None = None
        self.answer: Answer | None = None
        self._prepare = prepare
        self.chunk: int | None = None  # rows per group when it runs alone (halved on out-of-memory)
        self.cancelled = False
        self.outcome: GenerationOutput | BaseException | None = None  # set when it ends
        self.released = threading.Event()  # set once it holds no rows and has left the queue

    def prepare(self) -> None:
        if self.request is None:
            self.request, self.answer = self._prepare()

    @property
    def rows(self) -> int:
        return self.request.n_rows if self.request is not None else 0


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of a runner. ``rows_in_flight``: prompt copies being decoded (N+1 per FOCUS request)."""

    queued: int
    active: int
    rows_in_flight: int
    tokens_generated: int
    finished: int
    steps: int
    max_rows: int
    row_limit: int  # max_rows, or less after an out-of-memory error


class BatchRunner:
    """The scheduler: call ``run_once()`` until ``has_work`` is False (holding the decoder's model)."""

    def __init__(
        self, decoder: FocusDecoder, *, max_rows: int = DEFAULT_MAX_ROWS, join: str = "step"
    ) -> None:
        if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1:
            raise InvalidOptionError(f"max_rows must be an integer >= 1, got {max_rows!r}")
        if join not in JOIN_MODES:
            raise InvalidOptionError(f"join must be one of {', '.join(JOIN_MODES)}, got {join!r}")
        self.decoder = decoder
        self.max_rows = self.row_limit = max_rows
        self.join = join
        self._batchable = can_batch(decoder.model)
        # The queue, the running list and the counters: submit, cancel and stats come from other threads.
        self._lock = threading.Lock()
        self._queue: collections.deque[Job] = collections.deque()
        self._active: list[Job] = []  # admission order
        self._shared = self._new_batch()
        self._alone: tuple[Job, list[DecodeBatch]] | None = None  # one request in row groups, by itself
        self.tokens_generated = self.finished = self.steps = 0

    # ------------------------------------------------------------------------------------------ other threads

    def add(self, job: Job) -> None:
        with self._lock:
            self._queue.append(job)

    def submit(self, sink: Sink | None = None, /, **kwargs: Any) -> Job:
        """Queue a request (the keyword arguments of ``FocusDecoder.stream``), prepared when admitted."""
        images, prompt = kwargs.pop("images", None), kwargs.pop("prompt", None)
        job = self.decoder._batch_job(images, prompt, kwargs, sink)
        self.add(job)
        return job

    def cancel(self, job: Job) -> None:
        """Mark ``job`` cancelled; the next ``run_once`` frees its place or its rows."""
        job.cancelled = True

    @property
    def has_work(self) -> bool:
        return bool(self._queue or self._active)

    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(
                queued=len(self._queue),
                active=len(self._active),
                rows_in_flight=sum(job.rows for job in self._active),
                tokens_generated=self.tokens_generated,
                finished=self.finished,
                steps=self.steps,
                max_rows=self.max_rows,
                row_limit=self.row_limit,
            )

    # ------------------------------------------------------------------------------------------ the loop

    def run_once(self) -> None:
        """One scheduling round: free cancelled requests, admit waiting ones, run one decode step."""
        self._drop_cancelled()
        self._admit()
        if self._active:
            self._step()

    def shutdown(self, error: BaseException) -> None:
        """End every queued and running request with ``error``."""
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
        for job in [*self._active, *queued]:
            job.outcome = error
        self._release(set(self._active))
        for job in queued:
            self._deliver(job)

    def _drop_cancelled(self) -> None:
        with self._lock:
            dropped = [job for job in self._queue if job.cancelled]
            for job in dropped:
                self._queue.remove(job)
        for job in dropped:
            job.released.set()
        cancelled = {job for job in self._active if job.cancelled}
        if cancelled:
            self._release(cancelled)

    def _admit(self) -> None:
        if self.join == "batch" and self._active:
            return
        while self._queue and self._alone is None:
            job = self._queue[0]
            if job.cancelled or not self._prepared(job):
                with self._lock:
                    self._queue.popleft()
                self._deliver(job)
                continue
            assert job.request is not None
            chunk = min(job.rows, self.row_limit, job.chunk or job.rows, job.request.chunk)
            alone = chunk < job.rows or not self._batchable
            if self._active and (alone or self._shared.rows + job.rows > self.row_limit):
                return  # first come, first served: it waits for room
            with self._lock:
                self._queue.popleft()
            if not self._start(job, chunk, alone):
                return

    def _prepared(self, job: Job) -> bool:
        try:
            job.prepare()
        except Exception as err:  # its input: it fails, the others go on
            job.outcome = err
            return False
        return True

    def _start(self, job: Job, chunk: int, alone: bool) -> bool:
        """Prefill ``job`` and choose its first token (or its next, when it resumes); False: stop admitting."""
        from focus_integrations.request import row_groups

        assert job.request is not None and job.answer is not None
        groups: list[RowGroup] = []
        try:
            groups = row_groups(self.decoder, job.request, chunk)
            logits = prefill_logits(groups)
            if job.answer.token_ids:  # resuming after a preemption: the tokens it has, in one chunk
                generated = torch.tensor(job.answer.token_ids, device=logits.device)
                logits = torch.cat([group.step(generated) for group in groups], dim=0)
        except torch.OutOfMemoryError as err:
            del groups
            empty_device_cache(self.decoder.model)
            if self._active:  # the running requests hold the memory: fewer rows until they leave
                self.row_limit = max(1, (self._shared.rows + job.rows) // 2)
            elif chunk > 1:
                job.chunk = max(1, chunk // 2)
            else:
                job.outcome = err
                self._deliver(job)
                return True
            with self._lock:
                self._queue.appendleft(job)
            return False
        except Exception as err:  # this request's input or options: it fails, the others go on
            job.outcome = err
            self._deliver(job)
            return True
        with self._lock:
            self._active.append(job)
        if self._advance(job, logits):
            self._release({job})
        elif alone:
            job.chunk = chunk
            batches = [self._new_batch() for _ in groups]
            for batch, group in zip(batches, groups):
                batch.add(job, group)
            self._alone = (job, batches)
        else:
            self._shared.add(job, groups[0])
        return True

    def _step(self) -> None:
        tokens = {job: job.answer.last_token for job in self._active}
        try:
            if self._alone is not None:
                job, batches = self._alone
                logits = {job: torch.cat([batch.step(tokens)[job] for batch in batches], dim=0)}
            else:
                logits = self._shared.step(tokens)
        except torch.OutOfMemoryError as err:
            self._preempt_all(err)
            return
        except Exception as err:  # a failed forward leaves the cache unusable for every request in it
            logger.exception("a batched decode step failed; its %d requests fail", len(self._active))
            for job in self._active:
                job.outcome = err
            self._release(set(self._active))
            return
        self.steps += 1
        done = {job for job in self._active if self._advance(job, logits[job])}
        if done:
            self._release(done)

    def _advance(self, job: Job, logits: torch.Tensor) -> bool:
        """Choose ``job``'s next token from its rows' logits and stream its text; True once it is done."""
        answer = job.answer
        try:
            delta = answer.push(answer.choose(logits))
        except Exception as err:  # e.g. a constraint with no allowed token: this request only
            job.outcome = err
            return True
        with self._lock:
            self.tokens_generated += 1
        if answer.finished:
            delta += answer.flush()
        if delta:
            job.sink.delta(delta)
        if answer.finished:
            job.outcome = answer.output()
        return answer.finished

    def _release(self, jobs: set[Job]) -> None:
        """Free the rows of ``jobs`` (finished, failed or cancelled), then hand over their outcome."""
        self._shared.remove(jobs)
        if self._alone is not None and self._alone[0] in jobs:
            self._alone = None
        with self._lock:
            self._active = [job for job in self._active if job not in jobs]
        for job in jobs:
            self._deliver(job)

    def _deliver(self, job: Job) -> None:
        """The job holds no rows any more: tell its sink how it ended (a cancelled job's sink hears nothing)."""
        outcome = job.outcome
        if job.cancelled:
            pass
        elif isinstance(outcome, BaseException):
            job.sink.fail(outcome)
        elif outcome is not None:
            with self._lock:
                self.finished += 1
            job.sink.done(outcome)
        job.released.set()

    def _preempt_all(self, error: BaseException) -> None:
        """Out of memory in a step: drop every running request's rows; they resume later from their tokens."""
        jobs, rows, alone = list(self._active), self._shared.rows, self._alone
        self._shared, self._alone = self._new_batch(), None
        with self._lock:
            self._active = []
        empty_device_cache(self.decoder.model)
        if alone is not None:
            job = alone[0]
            if (job.chunk or 1) <= 1:  # one row per group is as small as it gets
                job.outcome = error
                self._deliver(job)
                return
            job.chunk = max(1, job.chunk // 2)
        else:
            self.row_limit = max(1, rows // 2)
        logger.warning(
            "out of memory in a batched step: %d requests resume, row limit %d", len(jobs), self.row_limit
        )
        with self._lock:
            self._queue.extendleft(reversed(jobs))

    def _new_batch(self) -> DecodeBatch:
        return DecodeBatch(self.decoder.model, self.decoder.family)
