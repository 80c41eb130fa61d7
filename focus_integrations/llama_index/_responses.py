"""How ``FocusMultiModalLLM`` turns engine outputs into LlamaIndex responses (a mixin: the methods use
``self._decoder``), and ``_Call``, one validated request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LogProb,
    MessageRole,
)

from focus_integrations.llama_index.tools import ToolRequest, answer_blocks, invalid_calls_kwargs
from focus_integrations.outputs import answer_logprobs
from focus_integrations.tool_calls import ParsedToolCalls

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.outputs import GenerationOutput

MessageBuilder = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class _Call:
    """One validated request: how to build its engine messages, its decoding options, the tools offered."""

    build: MessageBuilder
    options: dict[str, Any]
    tools: ToolRequest | None
    timeout: float | None = None  # seconds the call may take (checked between tokens)
    deadline: float | None = None  # time.monotonic() by which it must be done

    @property
    def answer_prefix(self) -> str | None:
        """Text the answer is forced to start with (a required tool call's opening), if any."""
        return (self.tools.prefix or None) if self.tools is not None else None


class _ResponseMixin:
    """Engine output -> ChatResponse / CompletionResponse (``raw``, token counts, tool-call blocks)."""

    _decoder: FocusDecoder

    def _raw(self, output: GenerationOutput) -> dict[str, Any]:
        usage = output.usage
        return {
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            },
            "finish_reason": output.finish_reason,
            "stop_sequence": output.stop_sequence,
            "settings": dict(output.settings),
            "model": self._decoder.model_name,
            # None unconstrained; False: a response_format / required call was cut off (not a valid answer)
            "constraint_satisfied": output.constraint_satisfied,
        }

    def _logprobs(self, output: GenerationOutput | None) -> list[list[LogProb]] | None:
        """LlamaIndex's ``response.logprobs``: per answer token, the token itself first, then the other
        ``top_logprobs`` likeliest tokens of that step (a final end-of-sequence token is left out)."""
        if output is None or output.logprobs is None:
            return None
        entries = answer_logprobs(output)

        def one(token: str, logprob: float) -> LogProb:
            return LogProb(token=token, logprob=logprob, bytes=list(token.encode("utf-8")))

        return [
            [one(e.token, e.logprob), *(one(t, lp) for i, t, lp in e.top if i != e.token_id)] for e in entries
        ]

    @staticmethod
    def _token_counts(output: GenerationOutput) -> dict[str, int]:
        return {
            "prompt_tokens": output.usage.input_tokens,
            "completion_tokens": output.usage.output_tokens,
            "total_tokens": output.usage.total_tokens,
        }

    def _chat_response(
        self,
        text: str,
        delta: str | None,
        output: GenerationOutput | None,
        parsed: ParsedToolCalls | None = None,
    ) -> ChatResponse:
        if parsed is not None:
            message = ChatMessage(
                role=MessageRole.ASSISTANT,
                blocks=answer_blocks(parsed),
                additional_kwargs=invalid_calls_kwargs(parsed),
            )
        else:
            message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
        return ChatResponse(
            message=message,
            delta=delta,
            raw=self._raw(output) if output is not None else None,
            logprobs=self._logprobs(output),
            additional_kwargs=self._token_counts(output) if output is not None else {},
        )

    def _chat_responses(self, call: _Call) -> Callable[[str, GenerationOutput | None], ChatResponse | None]:
        """Turn stream items into cumulative ChatResponses; with tools, markup is held back and parsed."""
        parser = call.tools.stream_parser() if call.tools is not None else None
        text = ""

        def push(delta: str, output: GenerationOutput | None) -> ChatResponse | None:
            nonlocal text
            parsed = None
            if parser is not None:
                if output is None:
                    delta = parser.feed(delta)
                    if not delta:
                        return None  # held back: maybe the start of a tool call
                else:
                    delta, parsed = parser.finish()
                    settled = call.tools.settle(parsed, output)  # type: ignore[union-attr]
                    delta, parsed = (delta, parsed) if settled is parsed else ("", settled)
            text += delta
            return self._chat_response(text, delta, output, parsed)

        return push

    def _final_chat_response(self, call: _Call, output: GenerationOutput) -> ChatResponse:
        parsed = call.tools.settle(call.tools.parse(output.text), output) if call.tools is not None else None
        return self._chat_response(output.text, None, output, parsed)

    def _completion_response(
        self, text: str, delta: str | None, output: GenerationOutput | None
    ) -> CompletionResponse:
        return CompletionResponse(
            text=text,
            delta=delta,
            raw=self._raw(output) if output is not None else None,
            logprobs=self._logprobs(output),
            additional_kwargs=self._token_counts(output) if output is not None else {},
        )
