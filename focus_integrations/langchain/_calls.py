"""One ``ChatFocus`` call, start to finish: ``prepare_request`` (options validated, images loaded, tools and
response format resolved into instructions and a grammar, outside the decoder lock) and ``run_request``
(the engine stream, tool-call markup held back and parsed, the deadline checked between tokens)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from focus_integrations.errors import RequestTimeoutError
from focus_integrations.langchain._messages import ImagePolicy, to_engine_messages
from focus_integrations.langchain._options import engine_options
from focus_integrations.langchain._responses import PROVIDER, _Outcome, _Request, final_chunk
from focus_integrations.langchain._structured import as_response_format, constraint_for, settle_tool_call
from focus_integrations.tool_calls import ToolCallStreamParser
from focus_integrations.tool_prompting import (
    format_instruction,
    renders_tools,
    tool_instructions,
    with_system_instructions,
)
from focus_integrations.vocabulary import check_timeout

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

    from focus_integrations.decoder import TextStream
    from focus_integrations.langchain.chat_models import ChatFocus


def image_policy(chat: ChatFocus) -> ImagePolicy:
    """Where ``chat`` may read images from (remote fetches only when allowed, with its limits)."""
    return ImagePolicy(
        allow_remote=chat.allow_remote_images,
        max_bytes=chat.remote_image_max_bytes,
        timeout=chat.remote_image_timeout,
        file_resolver=chat.file_resolver,
    )


def _instructions(
    decoder: Any, tools: list[dict[str, Any]] | None, tool_choice: str | None, format_text: str | None
) -> list[str]:
    """System instructions a call needs: tools for templates that cannot render them, a required call, the
    answer format."""
    instructions = tool_instructions(tools or [], tool_choice, bool(tools) and renders_tools(decoder))
    if format_text:
        instructions.append(format_text)
    return instructions


def prepare_request(
    chat: ChatFocus, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
) -> _Request:
    """Everything a call needs before it takes the decoder: bad options, images and tools raise here."""
    options = engine_options(chat, kwargs, stop)  # unknown names raise, listing the vocabulary
    model_override = kwargs.get("model")
    decoder = chat._decoder_for(model_override)
    engine_messages = to_engine_messages(
        messages, image_policy(chat), tool_turns_as_text=not renders_tools(decoder)
    )

    tools = kwargs.get("tools") or None
    tool_choice = kwargs.get("tool_choice")
    if tools and tool_choice == "none":
        tools = None
    response_format = as_response_format(kwargs["response_format"]) if kwargs.get("response_format") else None
    format_text = format_instruction(response_format) if response_format else None
    instructions = _instructions(decoder, tools, tool_choice, format_text)
    if instructions:
        engine_messages = with_system_instructions(engine_messages, instructions)

    constrained = constraint_for(decoder, tools, tool_choice, response_format)
    if constrained.response_format is not None:
        options["response_format"] = constrained.response_format
    timeout = check_timeout(kwargs.get("timeout", chat.timeout))
    return _Request(
        decoder=decoder,
        model_name=model_override or chat.model_name,
        messages=engine_messages,
        tools=tools if tools and renders_tools(decoder) else None,
        tool_names=[t["function"]["name"] for t in tools] if tools else [],
        options=options,
        deadline=time.monotonic() + timeout if timeout else None,
        timeout=timeout,
        answer_prefix=constrained.answer_prefix,
        forced_tool_call=constrained.tool_call,
        forced_tool_name=constrained.tool_name,
    )


def open_stream(request: _Request) -> TextStream:
    # A chat model answers text-only turns too (agent steps, follow-ups): they decode plainly.
    return request.decoder.stream(
        messages=request.messages,
        tools=request.tools,
        require_images=False,
        assistant_prefix=request.answer_prefix or None,
        **request.options,
    )


def run_request(
    request: _Request, *, generic_json: bool, cancelled: threading.Event | None = None
) -> Iterator[str | _Outcome]:
    """Shown text deltas, then one ``_Outcome``. Tool-call markup is held back and parsed."""
    parser = (
        ToolCallStreamParser(
            tool_names=request.tool_names, generic_json=generic_json or request.forced_tool_call
        )
        if request.tool_names
        else None
    )
    stream = open_stream(request)
    if request.answer_prefix:  # the forced start is part of the answer (held back by the parser if markup)
        shown = parser.feed(request.answer_prefix) if parser else request.answer_prefix
        if shown:
            yield shown
    try:
        for delta in stream:
            if cancelled is not None and cancelled.is_set():
                return  # the consumer went away; closing the stream frees the decoder
            if request.deadline is not None and time.monotonic() > request.deadline:
                raise RequestTimeoutError(f"ChatFocus call exceeded timeout={request.timeout}s")
            shown = parser.feed(delta) if parser else delta
            if shown:
                yield shown
    finally:
        stream.close()  # releases the decoder lock even when the consumer stops early
    parsed = None
    if parser is not None:
        tail, parsed = parser.finish()
        if request.forced_tool_call:
            raw = request.answer_prefix + stream.output.text
            settled = settle_tool_call(parsed, stream.output, raw, request.forced_tool_name)
            tail, parsed = (tail, parsed) if settled is parsed else ("", settled)
        if tail:
            yield tail
    yield _Outcome(stream.output, parsed)


def collect(items: Iterable[str | _Outcome]) -> tuple[str, _Outcome]:
    """The whole text of a run and its outcome."""
    text: list[str] = []
    outcome: _Outcome | None = None
    for item in items:
        if isinstance(item, _Outcome):
            outcome = item
        else:
            text.append(item)
    assert outcome is not None  # run_request always ends with one
    return "".join(text), outcome


async def acollect(items: AsyncIterator[str | _Outcome]) -> tuple[str, _Outcome]:
    """``collect`` for a run bridged to the event loop."""
    return collect([item async for item in items])


def as_chunk(request: _Request, item: str | _Outcome) -> ChatGenerationChunk:
    """A streamed piece of text, or the closing chunk (usage, tool calls, metadata) for the outcome."""
    if isinstance(item, _Outcome):
        return final_chunk(request, item, "")
    return ChatGenerationChunk(message=AIMessageChunk(content=item, response_metadata=dict(PROVIDER)))
