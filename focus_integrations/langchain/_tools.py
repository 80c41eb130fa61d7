"""``ChatFocus``'s tool_choice normalisation. Template probing, instructions for templates without tool
support and the forced start of a required call are framework-free: :mod:`focus_integrations.tool_prompting`
(the server uses them too)."""

from __future__ import annotations

from typing import Any

from focus_integrations.errors import InvalidOptionError

__all__ = ["_normalise_tool_choice"]


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
