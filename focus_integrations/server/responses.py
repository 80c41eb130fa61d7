"""Engine results -> OpenAI response bodies and stream chunks (Chat Completions and legacy Completions).

How an answer ends is decided once, by :func:`finish_chat`, for streamed and whole answers alike: the tool
calls found in it, and the ``finish_reason``. A constrained answer (``response_format``, forced tool call)
that ``max_tokens`` cut off keeps ``finish_reason: "length"``, as OpenAI reports it: the SDKs' ``.parse()``
then raise ``LengthFinishReasonError`` instead of handing on a half-written object, and a cut-off forced call
carries its partial ``arguments`` string (which no client parses as valid).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from focus_integrations.outputs import openai_logprobs
from focus_integrations.tool_calls import ParsedToolCalls, ToolCallStreamParser, cut_off_call

if TYPE_CHECKING:
    from focus_integrations.outputs import GenerationOutput
    from focus_integrations.server.protocol import EngineRequest


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage_body(output: GenerationOutput) -> dict[str, int]:
    return {
        "prompt_tokens": output.usage.input_tokens,
        "completion_tokens": output.usage.output_tokens,
        "total_tokens": output.usage.total_tokens,
    }


def chat_logprobs(request: EngineRequest, output: GenerationOutput) -> dict[str, Any] | None:
    """The choice's ``logprobs`` (None unless asked): the combined FOCUS distribution's, per token."""
    if output.logprobs is None:
        return None
    return openai_logprobs(output)


def completion_logprobs(request: EngineRequest, output: GenerationOutput) -> dict[str, Any] | None:
    """The legacy Completions shape: ``tokens``, ``token_logprobs``, ``top_logprobs`` (dicts), ``text_offset``."""
    chat = chat_logprobs(request, output)
    if chat is None:
        return None
    entries = chat["content"]
    offsets, position = [], 0
    for entry in entries:
        offsets.append(position)
        position += len(entry["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
        "text_offset": offsets,
    }


def focus_body(output: GenerationOutput) -> dict[str, Any]:
    """The ``focus`` object of a response: the settings used, and whether a constraint was completed."""
    body = dict(output.settings)
    if output.constraint_satisfied is not None:
        body["constraint_satisfied"] = output.constraint_satisfied
    return body


def openai_tool_calls(parsed: ParsedToolCalls, tool_names: list[str]) -> list[dict[str, Any]]:
    """Parsed calls to offered tools as OpenAI ``tool_calls`` (arguments as a JSON string).

    A malformed call to an offered tool keeps its raw arguments text (OpenAI's ``arguments`` is a string that
    clients parse, and LangChain files a bad one under ``invalid_tool_calls``); a call to a tool that was not
    offered is dropped.
    """
    calls = [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
        }
        for c in parsed.tool_calls
        if c["name"] in tool_names
    ]
    calls += [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": c["arguments"] or ""},
        }
        for c in parsed.invalid
        if c["name"] in tool_names
    ]
    return calls


_ARGUMENTS_KEY = '"arguments": '


def cut_off_tool_call(raw: str, name: str | None) -> dict[str, Any]:
    """A forced call that ``max_tokens`` cut off, as OpenAI sends one: its partial ``arguments`` text."""
    call = cut_off_call(raw, name)
    arguments = raw.split(_ARGUMENTS_KEY, 1)[1] if _ARGUMENTS_KEY in raw else ""
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"] or "", "arguments": arguments},
    }


@dataclass(frozen=True)
class ChatEnd:
    """How a chat answer ends: text still held back by the tool parser, the whole visible content, the
    tool calls and the ``finish_reason``."""

    tail: str
    content: str
    calls: list[dict[str, Any]]
    finish_reason: str


def finish_chat(
    request: EngineRequest, parser: ToolCallStreamParser | None, output: GenerationOutput, shown: str
) -> ChatEnd:
    """The end of an answer whose text went through ``parser`` (``shown``: what it let through)."""
    if parser is None:
        return ChatEnd("", shown, [], output.finish_reason)
    tail, parsed = parser.finish()
    if request.forced_call and output.constraint_satisfied is False:
        # The grammar was not completed: never a valid call, whatever a lenient parser makes of the text.
        call = cut_off_tool_call(request.answer_prefix + output.text, request.forced_tool)
        return ChatEnd("", "", [call], output.finish_reason)
    calls = openai_tool_calls(parsed, request.tool_names)
    truncated = output.finish_reason == "length" and bool(parsed.invalid)
    finish = "tool_calls" if calls and not truncated else output.finish_reason
    return ChatEnd(tail, parsed.content, calls, finish)


def chat_completion_body(
    request: EngineRequest, output: GenerationOutput, end: ChatEnd, response_id: str
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": end.content if end.content or not end.calls else None,
    }
    if end.calls:
        message["tool_calls"] = end.calls
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": chat_logprobs(request, output),
                "finish_reason": end.finish_reason,
            }
        ],
        "usage": usage_body(output),
        "focus": focus_body(output),
    }


def chat_chunk(
    request: EngineRequest,
    response_id: str,
    created: int,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choice = (
        None if delta is None else {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    )
    return _chunk(request, "chat.completion.chunk", response_id, created, choice, usage)


def completion_body(request: EngineRequest, output: GenerationOutput, response_id: str) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": request.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "text": output.text,
                "logprobs": completion_logprobs(request, output),
                "finish_reason": output.finish_reason,
            }
        ],
        "usage": usage_body(output),
        "focus": focus_body(output),
    }


def completion_chunk(
    request: EngineRequest,
    response_id: str,
    created: int,
    text: str | None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choice = (
        None if text is None else {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}
    )
    return _chunk(request, "text_completion", response_id, created, choice, usage)


def _chunk(
    request: EngineRequest,
    kind: str,
    response_id: str,
    created: int,
    choice: dict[str, Any] | None,
    usage: dict[str, int] | None,
) -> dict[str, Any]:
    """One SSE chunk of either endpoint: no choice = the usage-only last chunk."""
    chunk: dict[str, Any] = {
        "id": response_id,
        "object": kind,
        "created": created,
        "model": request.model,
        "system_fingerprint": None,
        "choices": [] if choice is None else [choice],
    }
    if request.include_usage:
        chunk["usage"] = usage  # null on every chunk but the last, as OpenAI sends it
    return chunk
