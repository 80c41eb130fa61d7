"""Parse model output into tool calls, framework-free (LangChain and LlamaIndex adapters share it).

Two formats are recognised:

* Qwen / Hermes markup: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, any number of blocks,
  anywhere in the text. This is what the Qwen2-VL / Qwen2.5-VL / Qwen3-VL chat templates teach the model.
* A generic JSON fallback for models whose template has no tool syntax: the whole answer is a JSON object
  (or a list of them), or a fenced ```` ```json ```` block holds one, shaped as ``{"name": ..., "arguments":
  ...}``, ``{"tool": ..., "parameters": ...}``, ``{"function": {"name": ..., "arguments": ...}}`` or
  ``{"tool_calls": [...]}``, also after Mistral's ``[TOOL_CALLS]`` prefix. Plain JSON that is not shaped
  like a call stays in the text. When the caller passes ``tool_names``, the fallback only accepts calls to
  those tools (so an answer that merely *is* JSON is not mistaken for a call).

Malformed output never raises: a ``<tool_call>`` block whose body is not a JSON call (or a Python-literal
dict, which small models write) becomes an entry of ``invalid`` (with the raw text and the reason), the way
LangChain's ``invalid_tool_calls`` expects.

Parsing and streaming share one state machine (:class:`ToolCallStreamParser`), so the text a stream emits
is exactly the ``content`` that :func:`parse_tool_calls` returns for the same output, and tool-call markup
never reaches the streamed text.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

__all__ = [
    "ToolCall",
    "InvalidToolCall",
    "ParsedToolCalls",
    "ToolCallStreamParser",
    "parse_tool_calls",
    "new_tool_call_id",
    "QWEN_OPEN",
    "QWEN_CLOSE",
    "cut_off_call",
]

QWEN_OPEN = "<tool_call>"


def forced_call_prefix(tool_choice: str, *, markup: bool) -> str:
    """The start an answer is forced to begin with so that it calls a tool (``tool_choice`` enforced).

    ``tool_choice``: "any" (the model still picks the tool: the prefix stops before the name) or a tool name
    (the prefix runs up to its arguments). ``markup``: the chat template writes calls as Qwen-style
    ``<tool_call>`` blocks; otherwise the generic JSON call format is used.
    """
    opening = QWEN_OPEN + "\n" if markup else ""
    if tool_choice == "any":
        return opening + '{"name": "'
    return opening + json.dumps({"name": tool_choice})[:-1] + ', "arguments": '


QWEN_CLOSE = "</tool_call>"


def cut_off_call(raw: str, name: str | None = None) -> InvalidToolCall:
    """A constrained call that ``max_new_tokens`` cut off before it was complete (never a valid call).

    ``name``: the tool, when only one was allowed; otherwise read from the text if it got that far."""
    name_match = re.search(r'"name":\s*"([^"]+)"', raw)
    return InvalidToolCall(
        name=name or (name_match.group(1) if name_match else None),
        arguments=raw,
        id=new_tool_call_id(),
        error="the tool call was cut off before it was complete (max_tokens ran out); raise max_tokens",
    )


_FENCE = "```"
_MISTRAL_PREFIX = "[TOOL_CALLS]"

# Keys under which models put the tool name and its arguments, in order of preference.
_NAME_KEYS = ("name", "tool", "tool_name", "function_name")
_ARGS_KEYS = ("arguments", "parameters", "args", "input", "tool_input")


class ToolCall(TypedDict):
    """A well-formed call: ``arguments`` is always a dict, ``id`` is never empty."""

    name: str
    arguments: dict[str, Any]
    id: str


class InvalidToolCall(TypedDict):
    """A call the model tried to make but got wrong; ``arguments`` holds the raw text."""

    name: str | None
    arguments: str | None
    id: str
    error: str


@dataclass
class ParsedToolCalls:
    """The text outside tool-call markup, the calls found, and the malformed ones."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    invalid: list[InvalidToolCall] = field(default_factory=list)


def new_tool_call_id() -> str:
    """A fresh id in the ``call_...`` style hosted APIs use (models rarely emit one)."""
    return f"call_{uuid.uuid4().hex[:24]}"


class _NotACall(Exception):
    """The JSON is valid but not shaped like a tool call."""


def _call_from_obj(obj: Any) -> list[tuple[str, Any, str | None]]:
    """(name, raw arguments, id) for every call in a decoded JSON value; raises _NotACall otherwise."""
    if isinstance(obj, list):
        if not obj:
            raise _NotACall("empty list")
        return [call for item in obj for call in _call_from_obj(item)]
    if not isinstance(obj, dict):
        raise _NotACall(f"expected a JSON object, got {type(obj).__name__}")
    if isinstance(obj.get("tool_calls"), list):
        return _call_from_obj(obj["tool_calls"])
    if isinstance(obj.get("function"), dict):  # OpenAI shape: {"type": "function", "function": {...}}
        inner = _call_from_obj(obj["function"])
        call_id = obj.get("id") if isinstance(obj.get("id"), str) else None
        return [(name, args, call_id or inner_id) for name, args, inner_id in inner]
    name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str) and obj[k].strip()), None)
    if name is None:
        raise _NotACall("no tool name")
    extra = set(obj) - set(_NAME_KEYS) - set(_ARGS_KEYS) - {"id", "type"}
    if extra:
        # {"name": "Ann", "age": 3} is data, not a call.
        raise _NotACall(f"unexpected keys {sorted(extra)}")
    args = next((obj[k] for k in _ARGS_KEYS if k in obj), {})
    call_id = obj.get("id") if isinstance(obj.get("id"), str) and obj["id"] else None
    return [(name.strip(), args, call_id)]


def _normalise_arguments(args: Any) -> dict[str, Any]:
    if args is None:
        return {}
    if isinstance(args, str):  # OpenAI-style: arguments as a JSON string
        args = json.loads(args) if args.strip() else {}
    if not isinstance(args, dict):
        raise ValueError(f"arguments must be a JSON object, got {type(args).__name__}")
    return args


def _strip_fence(body: str) -> str:
    """Models sometimes wrap the JSON inside <tool_call> in a code fence."""
    body = body.strip()
    match = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.DOTALL)
    return match.group(1) if match else body


@dataclass
class _Calls:
    valid: list[ToolCall] = field(default_factory=list)
    invalid: list[InvalidToolCall] = field(default_factory=list)


def _parse_markup_body(body: str, out: _Calls) -> None:
    """A <tool_call> body: anything wrong with it is an invalid call, never an exception."""
    raw = _strip_fence(body)
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as exc:
        decoded = _python_literal(raw)
        if decoded is not None:
            _add_calls(decoded, raw, out)
            return
        name_match = re.search(r"""["']name["']\s*:\s*["']([^"']+)["']""", raw)
        out.invalid.append(
            InvalidToolCall(
                name=name_match.group(1) if name_match else None,
                arguments=raw,
                id=new_tool_call_id(),
                error=f"tool call is not valid JSON: {exc.msg} at position {exc.pos}",
            )
        )
        return
    _add_calls(decoded, raw, out)


def _python_literal(raw: str) -> dict[str, Any] | list[Any] | None:
    """Small models sometimes write the call as a Python dict (single quotes, True/None): accept that."""
    if not raw.lstrip().startswith(("{", "[")):
        return None
    try:
        value = ast.literal_eval(raw)  # literals only: never evaluates code
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(value, (dict, list)):
        return None
    try:  # only what JSON can say (no sets, bytes, complex): arguments are re-serialised downstream
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return None


def _add_calls(decoded: Any, raw: str, out: _Calls) -> None:
    try:
        calls = _call_from_obj(decoded)
    except _NotACall as exc:
        out.invalid.append(
            InvalidToolCall(name=None, arguments=raw, id=new_tool_call_id(), error=f"not a tool call: {exc}")
        )
        return
    for name, args, call_id in calls:
        try:
            arguments = _normalise_arguments(args)
        except (ValueError, json.JSONDecodeError) as exc:
            out.invalid.append(
                InvalidToolCall(
                    name=name,
                    arguments=args if isinstance(args, str) else json.dumps(args),
                    id=call_id or new_tool_call_id(),
                    error=f"bad arguments: {exc}",
                )
            )
            continue
        out.valid.append(ToolCall(name=name, arguments=arguments, id=call_id or new_tool_call_id()))


def _parse_generic(text: str, tool_names: frozenset[str] | None) -> list[ToolCall] | None:
    """Calls if ``text`` is JSON shaped like tool calls (to known tools), else None (it is content)."""
    text = text.strip()
    if text.startswith(_MISTRAL_PREFIX):  # Mistral / Pixtral: "[TOOL_CALLS][{...}]"
        text = text[len(_MISTRAL_PREFIX) :]
    try:
        decoded = json.loads(_strip_fence(text))
        calls = _call_from_obj(decoded)
        result = [
            ToolCall(name=name, arguments=_normalise_arguments(args), id=call_id or new_tool_call_id())
            for name, args, call_id in calls
        ]
    except (json.JSONDecodeError, _NotACall, ValueError):
        return None
    if tool_names is not None and any(call["name"] not in tool_names for call in result):
        return None
    return result


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest proper prefix of ``marker`` that ``text`` ends with."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0


class ToolCallStreamParser:
    """Incremental tool-call parser: feed text deltas, get back only the text that is safe to show.

    Everything from ``<tool_call>`` to ``</tool_call>`` is held back and parsed into calls; a partial
    marker at the end of a delta (``"<tool_"``) is held until the next delta decides it. With
    ``generic_json=True`` an answer that starts with ``{`` / ``[`` is held to the end (it may be a JSON
    call), and so is a fenced block until it closes. Leading and trailing whitespace of the content is
    dropped, so ``"".join(emitted) == finish().content`` always.

    Not thread-safe: one instance per generation.
    """

    def __init__(self, *, tool_names: Iterable[str] | None = None, generic_json: bool = True) -> None:
        self._tool_names = frozenset(tool_names) if tool_names is not None else None
        self._generic = generic_json
        self._buffer = ""  # text received but not yet emitted or consumed
        self._pending_ws = ""  # whitespace held back: emitted only if more content follows
        self._started = False  # has any content been emitted
        self._state = "text"  # "text" | "markup" | "fence" | "json"
        self._calls = _Calls()
        self._content: list[str] = []
        self._finished: ParsedToolCalls | None = None

    def _emit(self, text: str) -> str:
        """Content text, with leading whitespace of the answer dropped and trailing whitespace held."""
        if not text:
            return ""
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
        body = text.rstrip()
        if not body:
            self._pending_ws += text
            return ""
        out = self._pending_ws + body
        self._pending_ws = text[len(body) :]
        self._started = True
        self._content.append(out)
        return out

    def feed(self, delta: str) -> str:
        """Add a text delta; return the text that may be shown now (possibly empty)."""
        if self._finished is not None:
            raise RuntimeError("feed() after finish()")
        self._buffer += delta
        return self._advance(final=False)

    def _advance(self, *, final: bool) -> str:
        shown: list[str] = []
        while True:
            if self._state == "text":
                if self._generic and not self._started and not self._pending_ws:
                    head = self._buffer.lstrip()
                    if head[:1] in ("{", "["):
                        self._state = "json"
                        continue
                starts = [i for i in (self._buffer.find(QWEN_OPEN),) if i >= 0]
                if self._generic:
                    fence = self._buffer.find(_FENCE)
                    if fence >= 0:
                        starts.append(fence)
                if starts:
                    cut = min(starts)
                    shown.append(self._emit(self._buffer[:cut]))
                    self._buffer = self._buffer[cut:]
                    if self._buffer.startswith(QWEN_OPEN):
                        self._buffer = self._buffer[len(QWEN_OPEN) :]
                        self._state = "markup"
                    else:
                        self._state = "fence"
                    continue
                hold = 0 if final else _partial_suffix(self._buffer, QWEN_OPEN)
                if self._generic and not final:
                    hold = max(hold, _partial_suffix(self._buffer, _FENCE))
                cut = len(self._buffer) - hold
                shown.append(self._emit(self._buffer[:cut]))
                self._buffer = self._buffer[cut:]
                break
            if self._state == "markup":
                end = self._buffer.find(QWEN_CLOSE)
                if end < 0:
                    if final:  # generation stopped inside the block (e.g. stop token or max tokens)
                        if self._buffer.strip():
                            _parse_markup_body(self._buffer, self._calls)
                        self._buffer = ""
                    break
                _parse_markup_body(self._buffer[:end], self._calls)
                self._buffer = self._buffer[end + len(QWEN_CLOSE) :]
                self._state = "text"
                continue
            if self._state == "fence":
                end = self._buffer.find(_FENCE, len(_FENCE))
                if end < 0 and not final:
                    break
                block = self._buffer if end < 0 else self._buffer[: end + len(_FENCE)]
                self._buffer = "" if end < 0 else self._buffer[end + len(_FENCE) :]
                calls = _parse_generic(block, self._tool_names) if end >= 0 else None
                if calls:
                    self._calls.valid.extend(calls)
                else:
                    shown.append(self._emit(block))
                self._state = "text"
                if end < 0:
                    break
                continue
            # "json": the whole answer may be one JSON call; only the end of the output can tell.
            if not final:
                break
            calls = _parse_generic(self._buffer, self._tool_names)
            if calls:
                self._calls.valid.extend(calls)
            else:
                # Not a call; markup may still follow the JSON, so scan it as text.
                self._generic = False
                self._state = "text"
                continue
            self._buffer = ""
            break
        return "".join(shown)

    def finish(self) -> tuple[str, ParsedToolCalls]:
        """End of output: return (the last text to show, the full parse). Idempotent."""
        if self._finished is not None:
            return "", self._finished
        tail = self._advance(final=True)
        self._finished = ParsedToolCalls(
            content="".join(self._content), tool_calls=self._calls.valid, invalid=self._calls.invalid
        )
        return tail, self._finished


def parse_tool_calls(
    text: str, *, tool_names: Iterable[str] | None = None, generic_json: bool = True
) -> ParsedToolCalls:
    """Split model output into content and tool calls; never raises on malformed output.

    ``tool_names`` restricts the generic JSON fallback to known tools (Qwen markup is always a call);
    ``generic_json=False`` turns the fallback off.
    """
    parser = ToolCallStreamParser(tool_names=tool_names, generic_json=generic_json)
    parser.feed(text)
    return parser.finish()[1]
