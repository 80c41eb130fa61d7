"""Structured output and forced tool calls of ``ChatFocus``, decoded under a grammar constraint.

``with_structured_output`` (``json_schema``, ``json_mode``, ``function_calling``), a ``response_format``
bound or passed per call, and a required ``tool_choice`` ("any" / "required" / a tool name) all decode under
the engine's ``response_format`` constraint on the combined logits: the answer always parses, and a tool
call always names an offered tool with arguments valid for its schema. An answer that ``max_tokens`` cut
off is never passed on as valid: a forced call becomes an ``invalid_tool_calls`` entry saying so, and the
structured-output runnable raises ``IncompleteOutputError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.runnables import Runnable, RunnableGenerator, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from focus_integrations.errors import IncompleteOutputError, InvalidOptionError
from focus_integrations.tool_calls import ParsedToolCalls, cut_off_call
from focus_integrations.tool_prompting import forced_tool_call

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.outputs import GenerationOutput

# response_metadata key: False when a constrained answer was cut off before its grammar was complete.
COMPLETE_KEY = "constraint_satisfied"


@dataclass(frozen=True)
class Constrained:
    """What constrains one call: the forced start of the answer and the engine's ``response_format``."""

    answer_prefix: str = ""
    response_format: dict[str, Any] | None = None
    tool_call: bool = False  # the constraint is a forced tool call
    tool_name: str | None = None  # ... of this one tool


def constraint_for(
    decoder: FocusDecoder, tools: list[dict[str, Any]] | None, tool_choice: str | None, response_format: Any
) -> Constrained:
    """The constraint of one call: a required tool call, a ``response_format``, or none."""
    if tools and tool_choice and tool_choice != "none":
        if response_format:
            raise InvalidOptionError(
                "a required tool call and a response_format cannot both constrain one answer; "
                "use with_structured_output(method='function_calling') or drop tool_choice"
            )
        forced = forced_tool_call(decoder, tools, tool_choice)
        name = tool_choice if tool_choice != "any" else None
        return Constrained(forced.prefix, forced.response_format, tool_call=True, tool_name=name)
    if response_format and tools:
        # OpenAI's semantics would be "a tool call or this JSON"; constraining to the JSON alone would
        # silently take the tools away (an agent could never call one).
        raise InvalidOptionError(
            "a response_format with tools the model may call (tool_choice auto) is not supported: "
            "require a call (tool_choice), or ask for the structured answer without tools"
        )
    if response_format:
        return Constrained(response_format=as_response_format(response_format))
    return Constrained()


def as_response_format(value: Any) -> dict[str, Any]:
    """A ``response_format`` as ChatOpenAI takes it: an OpenAI dict, or a pydantic class / TypedDict / schema."""
    if isinstance(value, dict) and "type" in value:
        return value
    try:
        schema = convert_to_json_schema(value)
    except (TypeError, ValueError) as err:
        raise InvalidOptionError(
            f"response_format must be an OpenAI response_format dict or a schema: {err}"
        ) from None
    return {"type": "json_schema", "json_schema": {"name": schema.get("title", "response"), "schema": schema}}


def settle_tool_call(
    parsed: ParsedToolCalls, output: GenerationOutput, raw: str, name: str | None = None
) -> ParsedToolCalls:
    """A forced call the budget cut off is reported as an invalid call, never as text or a valid call."""
    if output.constraint_satisfied is not False:
        return parsed
    return ParsedToolCalls(content="", tool_calls=[], invalid=[cut_off_call(raw, name)])


def structured_output(
    llm: Any,
    schema: dict[str, Any] | type,
    *,
    include_raw: bool,
    method: str,
    strict: bool | None,
) -> Runnable:
    """The runnable ``ChatFocus.with_structured_output`` returns (see its docstring)."""
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    ls_format = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
    if method == "function_calling":
        tool = convert_to_openai_tool(schema, strict=strict)
        tool_name = tool["function"]["name"]
        bound = llm.bind_tools([tool], tool_choice=tool_name, ls_structured_output_format=ls_format)
        parser: Runnable = (
            PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
            if is_pydantic
            else JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
        )
    elif method in ("json_schema", "json_mode"):
        response_format: dict[str, Any] = {"type": "json_object"}
        if method == "json_schema":
            json_schema = convert_to_json_schema(schema)
            spec: dict[str, Any] = {"name": json_schema.get("title", "response"), "schema": json_schema}
            if strict is not None:
                spec["strict"] = strict
            response_format = {"type": "json_schema", "json_schema": spec}
        bound = llm.bind(response_format=response_format, ls_structured_output_format=ls_format)
        parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
    else:
        raise InvalidOptionError(
            f"unknown method {method!r}; use 'function_calling', 'json_schema' or 'json_mode'"
        )
    parser = RunnableGenerator(_require_complete) | parser
    if not include_raw:
        return bound | parser
    with_parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    fallback = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=bound) | with_parsed.with_fallbacks([fallback], exception_key="parsing_error")


def _require_complete(messages: Iterator[BaseMessage]) -> Iterator[BaseMessage]:
    """Pass messages (or stream chunks) through; raise once the answer turns out to be cut off."""
    for message in messages:
        if message.response_metadata.get(COMPLETE_KEY) is False:
            reason = message.response_metadata.get("finish_reason")
            raise IncompleteOutputError(
                f"the structured answer was cut off before it was complete (finish_reason={reason!r}): "
                "raise max_tokens, or bound the schema (maxLength, maxItems, enum)"
            )
        yield message
