"""Tool helpers of ``ChatFocus``: tool_choice normalisation, template probing, instructions for templates
without tool support, and the forced start of a required call."""

from __future__ import annotations

import json
import weakref
from typing import TYPE_CHECKING, Any

from focus_integrations.errors import InvalidOptionError
from focus_integrations.tool_calls import QWEN_OPEN, forced_call_prefix

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder

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


def _normalise_tool_choice(choice: Any, names: list[str]) -> str | None:
    """None (model decides), "none", "any", or one tool name."""
    if choice is None or choice is False or choice == "auto":
        return None
    if choice is True or choice in ("any", "required"):
        return "any"
    if choice == "none":
        return "none"
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if not isinstance(name, str):
            raise InvalidOptionError(f"tool_choice dict without a function name: {choice!r}")
        choice = name
    if isinstance(choice, str):
        if choice not in names:
            raise InvalidOptionError(f"tool_choice {choice!r} is not one of the bound tools {names}")
        return choice
    raise InvalidOptionError(
        f"tool_choice must be None, 'auto', 'any', 'none' or a tool name, got {choice!r}"
    )


def _renders_tools(decoder: FocusDecoder) -> bool:
    """Does the chat template show the `tools` argument to the model? (Probe once per decoder.)"""
    known = _RENDERS_TOOLS.get(decoder)
    if known is None:
        try:
            rendered = decoder.render_prompt([{"role": "user", "content": "hi"}], tools=[_PROBE_TOOL])
            known = _PROBE_TOOL["function"]["name"] in rendered
        except Exception:  # a template that chokes on tools does not support them
            known = False
        _RENDERS_TOOLS[decoder] = known
    return known


def _forced_tool_call_prefix(decoder: FocusDecoder, tool_choice: str) -> str:
    """The start of a tool call the answer must begin with: ``tool_choice`` is enforced, not only asked for."""
    template = getattr(decoder.processor, "chat_template", None) or ""
    return forced_call_prefix(tool_choice, markup=_renders_tools(decoder) and QWEN_OPEN in template)


def _tool_instruction(tools: list[dict[str, Any]]) -> str:
    """For templates without tool support: describe the tools and the JSON call format in the system turn."""
    specs = "\n".join(json.dumps(tool["function"]) for tool in tools)
    return (
        "You can call these tools:\n"
        f"{specs}\n"
        'To call a tool, answer with only a JSON object {"name": <tool name>, "arguments": <object>} '
        "(or a list of them) and nothing else. Otherwise answer normally."
    )


def _json_instruction(response_format: dict[str, Any]) -> str:
    """``{"type": "json_schema", "schema": ...}`` (ours) or OpenAI's ``{"json_schema": {"schema": ...}}``."""
    schema = response_format.get("schema")
    if schema is None and isinstance(response_format.get("json_schema"), dict):
        schema = response_format["json_schema"].get("schema")
    if response_format.get("type") == "json_schema" and schema:
        return (
            "Answer with only a JSON object that matches this JSON schema, and nothing else:\n"
            + json.dumps(schema)
        )
    return "Answer with only a valid JSON object, and nothing else."


def _with_system_instructions(
    messages: list[dict[str, Any]], instructions: list[str]
) -> list[dict[str, Any]]:
    text = "\n\n".join(instructions)
    if messages and messages[0]["role"] == "system" and isinstance(messages[0]["content"], str):
        first = dict(messages[0])
        first["content"] = f"{first['content']}\n\n{text}" if first["content"] else text
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]
