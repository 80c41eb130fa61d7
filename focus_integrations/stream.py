"""``TextStream``: one request's text deltas, decoded while it is iterated (``FocusDecoder.stream``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from focus_integrations.decode import RowGroup, prefill_logits, step_logits
from focus_integrations.messages import Conversation
from focus_integrations.options import DecodingOptions
from focus_integrations.outputs import GenerationOutput

if TYPE_CHECKING:
    from focus_integrations.answer import Answer
    from focus_integrations.constraints import GrammarConstraint
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.request import PreparedRequest


class TextStream:
    """Iterator of text deltas for one request; ``output`` is the :class:`GenerationOutput` when done.

    The decoder's lock is held from the first ``next()`` until the stream ends or is closed.
    """

    def __init__(
        self,
        decoder: FocusDecoder,
        conversation: Conversation,
        tools: Any,
        options: DecodingOptions,
        constraint: GrammarConstraint | None = None,
        sources: dict[str, str] | None = None,
    ) -> None:
        self._sources = sources
        self._decoder = decoder
        self._constraint = constraint
        self._conversation = conversation
        self._tools = tools
        self._options = options
        self._output: GenerationOutput | None = None
        self._answer: Answer | None = None  # set once the prompt is prefilled
        self._iterator = self._run()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._iterator)

    def close(self) -> None:
        self._iterator.close()

    @property
    def output(self) -> GenerationOutput:
        if self._output is None:
            raise RuntimeError("the stream has not finished yet: iterate it to the end first")
        return self._output

    @property
    def tokens_generated(self) -> int:
        """Tokens chosen so far (0 before the prefill); a server's throughput gauge reads it mid-answer."""
        return len(self._answer.token_ids) if self._answer is not None else 0

    def _run(self) -> Iterator[str]:
        decoder = self._decoder
        with decoder._hold():
            chooser = decoder._chooser(self._options, self._constraint)

            def start(request: PreparedRequest, groups: list[RowGroup]) -> tuple[Answer, list[RowGroup], Any]:
                # The prefill runs inside the fallback: memory peaks there.
                logits = prefill_logits(groups)
                self._answer = decoder._answer(request, chooser)
                return self._answer, groups, logits

            answer, groups, logits = decoder._run_with_memory_fallback(
                self._conversation, self._tools, self._options, start, self._sources
            )
            while True:
                delta = answer.push(answer.choose(logits))
                if delta:
                    yield delta
                if answer.finished:
                    break
                logits = step_logits(groups, answer.last_token)
            tail = answer.flush()
            if tail:
                yield tail
            self._output = answer.output()
