"""Tool calling for ``FocusMultiModalLLM``: LlamaIndex tools in, ``ToolCallBlock``s out.

The tools are rendered by the checkpoint's own chat template (``apply_chat_template(tools=...)``), and the
answer is parsed by the framework-free :mod:`focus_integrations.tool_calls` (Qwen ``<tool_call>`` markup, or
a JSON call restricted to the offered tool names). ``tool_required`` / ``tool_choice="required"`` and a
named ``tool_choice`` are enforced: the answer starts with the template's opening markup (the engine's
``assistant_prefix``) and a grammar constrains the rest to one call of an offered tool with arguments valid
for its schema (``tool_prompting.forced_tool_call``). A call that ``max_new_tokens`` cut off is reported as
an invalid call, never as a valid one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.tools.types import BaseTool

from focus_integrations.errors import InvalidOptionError
from focus_integrations.tool_calls import (
    ParsedToolCalls,
    ToolCallStreamParser,
    cut_off_call,
    parse_tool_calls,
)
from focus_integrations.tool_prompting import renders_tools

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.outputs import GenerationOutput

INVALID_TOOL_CALLS_KEY = "invalid_tool_calls"


@dataclass(frozen=True)
class ToolRequest:
    """The tools offered to one call, as JSON schemas for the chat template, and the forced answer start."""

    schemas: list[dict[str, Any]]
    prefix: str = ""  # the answer is forced to begin with this text ("" when the model may answer freely)
    required: str | None = None  # "any" or a tool name: a call is required
    response_format: dict[str, Any] | None = None  # the grammar of the required call
    # The tools' full argument schemas for the grammar: LlamaIndex's to_openai_tool() keeps only some keys
    # of a pydantic fn_schema (it drops additionalProperties: false), which would leave the object open.
    argument_schemas: list[dict[str, Any]] | None = None

    @property
    def names(self) -> list[str]:
        return [schema["function"]["name"] for schema in self.schemas]

    def parse(self, text: str) -> ParsedToolCalls:
        """Parse a whole answer (the engine's text, which does not include the forced prefix)."""
        return parse_tool_calls(self.prefix + text, tool_names=self.names)

    def settle(self, parsed: ParsedToolCalls, output: GenerationOutput) -> ParsedToolCalls:
        """A required call that the budget cut off is an invalid call saying so (never text, never valid)."""
        if self.response_format is None or output.constraint_satisfied is not False:
            return parsed
        name = self.required if self.required != "any" else None
        return ParsedToolCalls(content="", invalid=[cut_off_call(self.prefix + output.text, name)])

    def stream_parser(self) -> ToolCallStreamParser:
        """A stream parser that has already seen the forced prefix (markup: nothing of it is shown)."""
        parser = ToolCallStreamParser(tool_names=self.names)
        parser.feed(self.prefix)
        return parser


def tool_request(tools: Any, tool_choice: Any = None, tool_required: bool = False) -> ToolRequest | None:
    """Normalise ``tools`` (LlamaIndex ``BaseTool``s or OpenAI-style dicts) and apply ``tool_choice``.

    ``tool_choice``: None / "auto" offer every tool; "required" / "any" (or ``tool_required``) offer every tool
    and require a call; "none" offers none; a tool name, or ``{"type": "function", "function": {"name": ...}}``,
    offers and requires that tool. A required call is recorded in ``required``; the LLM turns it into the
    constrained decode (``prefix`` and ``response_format``) for its checkpoint.
    """
    if not tools:
        return None
    if isinstance(tools, (str, dict)) or not isinstance(tools, Sequence):
        raise InvalidOptionError("tools must be a list of LlamaIndex tools or OpenAI-style tool dicts")
    schemas = [_schema(tool, index) for index, tool in enumerate(tools)]
    full = [_full_schema(tool, schema) for tool, schema in zip(tools, schemas)]
    names = [schema["function"]["name"] for schema in schemas]
    if len(set(names)) != len(names):
        raise InvalidOptionError(f"tool names must be unique, got {names}")
    if isinstance(tool_choice, dict):
        tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if tool_choice == "none":
        return None
    if tool_choice is None or tool_choice in ("auto", "required", "any"):
        required = tool_required or tool_choice in ("required", "any")
        return ToolRequest(schemas, required="any" if required else None, argument_schemas=full)
    if isinstance(tool_choice, str) and tool_choice in names:
        index = names.index(tool_choice)
        return ToolRequest([schemas[index]], required=tool_choice, argument_schemas=[full[index]])
    raise InvalidOptionError(
        f"tool_choice {tool_choice!r} is not 'auto', 'required', 'none' or one of {names}"
    )


def _full_schema(tool: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the parameters of the tool's pydantic ``fn_schema`` as pydantic writes them."""
    fn_schema = getattr(getattr(tool, "metadata", None), "fn_schema", None)
    if fn_schema is None or not hasattr(fn_schema, "model_json_schema"):
        return schema
    return {
        "type": "function",
        "function": {**schema["function"], "parameters": fn_schema.model_json_schema()},
    }


def _schema(tool: Any, index: int) -> dict[str, Any]:
    metadata = getattr(tool, "metadata", None)
    if metadata is not None and hasattr(metadata, "to_openai_tool"):
        return metadata.to_openai_tool()
    if isinstance(tool, dict):
        function = tool.get("function") if tool.get("type") == "function" else tool
        if isinstance(function, dict) and isinstance(function.get("name"), str) and function["name"]:
            return {"type": "function", "function": function}
    raise InvalidOptionError(
        f"tool {index} is a {type(tool).__name__}: pass LlamaIndex tools (FunctionTool, ...) or dicts shaped "
        "like {'type': 'function', 'function': {'name': ..., 'parameters': {...}}}"
    )


def answer_blocks(parsed: ParsedToolCalls) -> list[Any]:
    """The assistant message's blocks: its text, then one ``ToolCallBlock`` per well-formed call."""
    blocks: list[Any] = [TextBlock(text=parsed.content)]
    blocks.extend(
        ToolCallBlock(tool_call_id=call["id"], tool_name=call["name"], tool_kwargs=call["arguments"])
        for call in parsed.tool_calls
    )
    return blocks


def invalid_calls_kwargs(parsed: ParsedToolCalls) -> dict[str, Any]:
    """Malformed calls (raw text and reason) ride in the message's ``additional_kwargs``."""
    return {INVALID_TOOL_CALLS_KEY: [dict(call) for call in parsed.invalid]} if parsed.invalid else {}


def tool_selections(response: ChatResponse) -> list[ToolSelection]:
    selections = []
    for block in response.message.blocks:
        if isinstance(block, ToolCallBlock):
            arguments = block.tool_kwargs
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments) if arguments.strip() else {}
                except json.JSONDecodeError:
                    arguments = {"input": arguments}
            selections.append(
                ToolSelection(
                    tool_id=block.tool_call_id or "", tool_name=block.tool_name, tool_kwargs=arguments
                )
            )
    return selections


def keep_first_call(response: ChatResponse) -> ChatResponse:
    """Drop every tool call after the first (when parallel calls are not allowed)."""
    seen = False
    blocks = []
    for block in response.message.blocks:
        if isinstance(block, ToolCallBlock):
            if seen:
                continue
            seen = True
        blocks.append(block)
    response.message.blocks = blocks
    return response


class ToolCallingMixin:
    """``FunctionCallingLLM``'s tool methods for ``FocusMultiModalLLM`` (the decoder's template decides)."""

    _decoder: FocusDecoder

    def supports_tools(self) -> bool:
        """Does the checkpoint's chat template show tools to the model? (Probed once per decoder, the same
        probe ``ChatFocus`` uses.)"""
        return renders_tools(self._decoder)

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg)
                if isinstance(user_msg, str)
                else user_msg
            )
        return {"messages": messages, "tools": list(tools) or None, "tool_required": tool_required, **kwargs}

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        return response if allow_parallel_tool_calls else keep_first_call(response)

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls of a response (``ToolCallBlock``s). Raises ``ValueError`` if there are none and
        ``error_on_no_tool_call`` (LlamaIndex's convention)."""
        selections = tool_selections(response)
        if not selections and error_on_no_tool_call:
            raise ValueError(
                f"expected at least one tool call in the response, got none: {response.message.content!r}"
            )
        return selections
