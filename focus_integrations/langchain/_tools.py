"""Tool helpers of ``ChatFocus``: tool_choice normalisation, template probing, instructions for templates
without tool support, and the forced start of a required call."""

from __future__ import annotations

from typing import Any

from focus_integrations.errors import InvalidOptionError

# Template probing, instructions and the forced call start are framework-free (the server uses them too).
from focus_integrations.tool_prompting import forced_tool_call_prefix as _forced_tool_call_prefix
from focus_integrations.tool_prompting import json_instruction as _json_instruction
from focus_integrations.tool_prompting import renders_tools as _renders_tools
from focus_integrations.tool_prompting import tool_instruction as _tool_instruction
from focus_integrations.tool_prompting import with_system_instructions as _with_system_instructions

__all__ = [
    "_normalise_tool_choice",
    "_forced_tool_call_prefix",
    "_json_instruction",
    "_renders_tools",
    "_tool_instruction",
    "_with_system_instructions",
]


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
