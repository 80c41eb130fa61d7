"""What a ``ChatFocus`` call prepares (``_Request``) and how its engine output becomes LangChain messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call as make_invalid_tool_call
from langchain_core.messages.tool import tool_call as make_tool_call
from langchain_core.messages.tool import tool_call_chunk as make_tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from focus_integrations.outputs import openai_logprobs  # noqa: F401 (shared with the server)
from focus_integrations.tool_calls import ParsedToolCalls

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.outputs import GenerationOutput


# LangChain's provider key (langchain-core >= 1.0 reads it to pick a content translator; none is registered
# for this one, so message content is parsed the standard way). The same name as `ls_provider`.
MODEL_PROVIDER = "focus"
PROVIDER = {"model_provider": MODEL_PROVIDER}


@dataclass
class _Request:
    """One call, prepared outside the decoder lock: images loaded, options validated, tools resolved."""

    decoder: FocusDecoder
    model_name: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_names: list[str]
    options: dict[str, Any]
    deadline: float | None
    timeout: float | None
    answer_prefix: str = ""  # forced start of the answer (the opening markup of a required tool call)
    forced_tool_call: bool = False  # the answer is a grammar-constrained tool call
    forced_tool_name: str | None = None  # ... to this one tool


@dataclass
class _Outcome:
    output: GenerationOutput
    parsed: ParsedToolCalls | None


def metadata(request: _Request, output: GenerationOutput) -> tuple[UsageMetadata, dict[str, Any]]:
    usage = UsageMetadata(
        input_tokens=output.usage.input_tokens,
        output_tokens=output.usage.output_tokens,
        total_tokens=output.usage.total_tokens,
    )
    settings = dict(output.settings)
    response = {
        "model_name": request.model_name,
        "model_provider": MODEL_PROVIDER,
        "finish_reason": output.finish_reason,
        "stop_sequence": output.stop_sequence,
        "focus": settings,
    }
    if output.constraint_satisfied is not None:  # constrained: False means cut off, not a valid answer
        response["constraint_satisfied"] = output.constraint_satisfied
    if output.logprobs is not None:
        response["logprobs"] = openai_logprobs(output)
    return usage, response


def tool_fields(parsed: ParsedToolCalls | None) -> dict[str, Any]:
    if parsed is None:
        return {}
    return {
        "tool_calls": [
            make_tool_call(name=c["name"], args=c["arguments"], id=c["id"]) for c in parsed.tool_calls
        ],
        "invalid_tool_calls": [
            make_invalid_tool_call(name=c["name"], args=c["arguments"], id=c["id"], error=c["error"])
            for c in parsed.invalid
        ],
    }


def final_chunk(request: _Request, outcome: _Outcome, tail: str) -> ChatGenerationChunk:
    usage, response = metadata(request, outcome.output)
    chunks = []
    if outcome.parsed is not None:
        for index, call in enumerate(outcome.parsed.tool_calls):
            chunks.append(
                make_tool_call_chunk(
                    name=call["name"], args=json.dumps(call["arguments"]), id=call["id"], index=index
                )
            )
        offset = len(chunks)
        for index, bad in enumerate(outcome.parsed.invalid):
            # As a JSON string literal, so chunk merging (which parses args leniently) keeps it invalid.
            chunks.append(
                make_tool_call_chunk(
                    name=bad["name"],
                    args=json.dumps(bad["arguments"]),
                    id=bad["id"],
                    index=offset + index,
                )
            )
    message = AIMessageChunk(
        content=tail,
        tool_call_chunks=chunks,
        usage_metadata=usage,
        response_metadata=response,
        chunk_position="last",
    )
    return ChatGenerationChunk(
        message=message, generation_info={"finish_reason": outcome.output.finish_reason}
    )


def chat_result(request: _Request, outcome: _Outcome, text: str) -> ChatResult:
    usage, response = metadata(request, outcome.output)
    message = AIMessage(
        content=text,
        usage_metadata=usage,
        response_metadata=response,
        **tool_fields(outcome.parsed),
    )
    return ChatResult(
        generations=[
            ChatGeneration(message=message, generation_info={"finish_reason": response["finish_reason"]})
        ],
        llm_output={"model_name": request.model_name},
    )
