"""How tools, ``tool_choice`` and JSON answers are put to a model, whatever its chat template supports.

Framework-free; the LangChain adapter and the OpenAI-compatible server share it.

* A template that renders the ``tools`` argument (Qwen, Llama, ...) gets the tools through
  ``apply_chat_template(tools=...)``. One that does not (LLaVA, the bundled default model) gets them as a
  system instruction describing the JSON call format, and its tool turns rewritten as plain text
  (:func:`tool_turn_as_text`), so no template drops or rejects them.
* A required call (``tool_choice`` "any" or a tool name) is enforced, not only asked for: the answer
  starts with the template's opening markup and a grammar constrains the rest to one valid call
  (:func:`forced_tool_call`: the engine's ``assistant_prefix`` and ``response_format``).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from focus_integrations.errors import InvalidOptionError
from focus_integrations.tool_calls import QWEN_CLOSE, QWEN_OPEN, forced_call_prefix

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder

__all__ = [
    "renders_tools",
    "forced_tool_call_prefix",
    "forced_tool_call",
    "ForcedToolCall",
    "tool_call_or_answer",
    "writes_call_markup",
    "tool_instruction",
    "json_instruction",
    "format_instruction",
    "with_system_instructions",
    "tool_turn_as_text",
]

# Whether a decoder's chat template renders the `tools` argument (probed once per decoder).
_RENDERS_TOOLS: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "focus_template_probe_7f3a",
        "description": "probe",
        "parameters": {"type": "object", "properties": {}},
    },
}


def renders_tools(decoder: FocusDecoder) -> bool:
    """Does the chat template show the ``tools`` argument to the model? (Probed once per decoder.)"""
    known = _RENDERS_TOOLS.get(decoder)
    if known is None:
        known = processor_renders_tools(decoder.processor)
        _RENDERS_TOOLS[decoder] = known
    return known


def processor_renders_tools(processor: Any) -> bool:
    """The same probe on a processor alone (what a chat model can know before it loads any weights)."""
    try:
        rendered = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            tools=[_PROBE_TOOL],
            add_generation_prompt=True,
            tokenize=False,
        )
    except Exception:  # noqa: BLE001 - a template that chokes on tools does not support them
        return False
    return isinstance(rendered, str) and _PROBE_TOOL["function"]["name"] in rendered


def forced_tool_call_prefix(decoder: FocusDecoder, tool_choice: str) -> str:
    """The start of a tool call the answer must begin with (``tool_choice``: "any" or a tool name).

    Prompt-only enforcement: the model writes the rest freely. :func:`forced_tool_call` enforces the whole call.
    """
    return forced_call_prefix(tool_choice, markup=writes_call_markup(decoder))


def writes_call_markup(decoder: FocusDecoder) -> bool:
    """The chat template renders tools and writes calls as Qwen/Hermes ``<tool_call>`` blocks."""
    template = getattr(decoder.processor, "chat_template", None) or ""
    return renders_tools(decoder) and QWEN_OPEN in template


@dataclass(frozen=True)
class ForcedToolCall:
    """How a required call is decoded: the answer starts with ``prefix`` (the template's opening markup, in
    the prompt as the template's own tokens) and the rest is constrained by ``response_format``: one call
    ``{"name": ..., "arguments": ...}`` to an offered tool, with arguments valid for its schema, then the
    closing markup. Pass ``prefix`` as ``assistant_prefix`` and ``response_format`` as the decoding option."""

    prefix: str
    response_format: dict[str, Any]


def forced_tool_call(decoder: FocusDecoder, tools: list[dict[str, Any]], tool_choice: str) -> ForcedToolCall:
    """The constrained decode of a required call (``tool_choice``: "any" or one of the ``tools``' names).

    Follows the template's call syntax where it has one (``<tool_call>\n{...}\n</tool_call>``), a bare JSON
    call otherwise. A tokenizer that cannot spell JSON makes the call raise ``UnsupportedTokenizerError``.
    """
    chosen = tools if tool_choice == "any" else [t for t in tools if t["function"]["name"] == tool_choice]
    if not chosen:
        raise InvalidOptionError(f"tool_choice {tool_choice!r} is not one of the offered tools")
    markup = writes_call_markup(decoder)
    return ForcedToolCall(
        prefix=QWEN_OPEN + "\n" if markup else "",
        response_format={"type": "tool_call", "tools": chosen, "suffix": "\n" + QWEN_CLOSE if markup else ""},
    )


def tool_call_or_answer(
    decoder: FocusDecoder, tools: list[dict[str, Any]], answer: dict[str, Any]
) -> dict[str, Any]:
    """The grammar of ``tool_choice`` auto with a JSON ``answer`` format: one call to an offered tool (in
    the template's markup, which the grammar spells) or the JSON answer. Without markup the call is bare JSON,
    told from the answer by its shape."""
    markup = writes_call_markup(decoder)
    return {
        "type": "tool_call",
        "tools": tools,
        "prefix": QWEN_OPEN + "\n" if markup else "",
        "suffix": "\n" + QWEN_CLOSE if markup else "",
        "answer": answer,
    }


def tool_instruction(tools: list[dict[str, Any]]) -> str:
    """For templates without tool support: describe the tools and the JSON call format in the system turn."""
    specs = "\n".join(json.dumps(tool["function"]) for tool in tools)
    return (
        "You can call these tools:\n"
        f"{specs}\n"
        'To call a tool, answer with only a JSON object {"name": <tool name>, "arguments": <object>} '
        "(or a list of them) and nothing else. Otherwise answer normally."
    )


def tool_instructions(
    tools: list[dict[str, Any]], tool_choice: str | None, template_renders: bool
) -> list[str]:
    """The system instructions a turn with ``tools`` needs: the tools themselves when the template cannot
    render them, and the call a required ``tool_choice`` ("any" or a tool's name) asks for."""
    if not tools:
        return []
    instructions = [] if template_renders else [tool_instruction(tools)]
    if tool_choice == "any":
        instructions.append("You must answer with a call to one of the tools.")
    elif tool_choice:
        instructions.append(f"You must answer with a call to the tool `{tool_choice}`.")
    return instructions


def json_instruction(response_format: dict[str, Any]) -> str:
    """``{"type": "json_schema", "schema": ...}`` or OpenAI's ``{"json_schema": {"schema": ...}}``."""
    schema = response_format.get("schema")
    if schema is None and isinstance(response_format.get("json_schema"), dict):
        schema = response_format["json_schema"].get("schema")
    if response_format.get("type") == "json_schema" and schema:
        return (
            "Answer with only a JSON object that matches this JSON schema, and nothing else:\n"
            + json.dumps(schema)
        )
    return "Answer with only a valid JSON object, and nothing else."


def format_instruction(response_format: dict[str, Any]) -> str | None:
    """What to tell the model about a ``response_format`` (the grammar enforces it; words help real models)."""
    kind = response_format.get("type")
    if kind in ("json_schema", "json_object"):
        return json_instruction(response_format)
    if kind == "choice":
        return "Answer with exactly one of these, and nothing else: " + "; ".join(response_format["choices"])
    return None  # regex, tool_call (its tools are described already), text


def with_system_instructions(messages: list[dict[str, Any]], instructions: list[str]) -> list[dict[str, Any]]:
    """``messages`` with ``instructions`` appended to the first system turn (or a new one in front)."""
    text = "\n\n".join(instructions)
    if messages and messages[0]["role"] == "system" and isinstance(messages[0]["content"], str):
        first = dict(messages[0])
        first["content"] = f"{first['content']}\n\n{text}" if first["content"] else text
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def tool_turn_as_text(entry: dict[str, Any]) -> dict[str, Any]:
    """For templates with no tool syntax: an assistant's calls become its text, a tool result a user turn."""
    if entry["role"] == "assistant" and entry.get("tool_calls"):
        calls = [
            {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}
            for call in entry["tool_calls"]
        ]
        call_text = json.dumps(calls[0] if len(calls) == 1 else calls)
        return {
            "role": "assistant",
            "content": f"{entry['content']}\n{call_text}" if entry["content"] else call_text,
        }
    if entry["role"] == "tool":
        label = f"Result of tool {entry['name']}" if entry.get("name") else "Tool result"
        if entry.get("tool_call_id"):
            label += f" (call {entry['tool_call_id']})"
        content = entry["content"]
        if isinstance(content, str):
            return {"role": "user", "content": f"{label}:\n{content}"}
        return {"role": "user", "content": [{"type": "text", "text": f"{label}:\n"}, *content]}
    return entry
