"""OpenAI request bodies -> engine requests (responses are built in :mod:`.responses`).

Chat Completions (``/v1/chat/completions``) and the legacy Completions (``/v1/completions``). Unknown fields
are ignored, as OpenAI-compatible servers do. The body's option fields (OpenAI's ``max_tokens``,
``temperature``, ``stop``, ...; FOCUS settings and every other ``DecodingOptions`` field as extra top-level
fields, the ``extra_body`` of the SDKs) go through the library's one vocabulary,
``vocabulary.decoding_layer``, as every entry point's do.

Structured answers decode under the engine's grammar constraint: ``response_format`` (``json_schema``,
``json_object``, and the engine's ``regex`` / ``choice``) goes to ``DecodingOptions.response_format`` as sent;
a required ``tool_choice`` ("required" or a named function) becomes the call grammar of
:func:`tool_prompting.forced_tool_call`, so the call names an offered tool and its arguments validate against
that tool's parameters; ``tool_choice`` auto next to a JSON ``response_format`` decodes under "a call, or the
JSON answer" (:func:`tool_prompting.tool_call_or_answer`). A constraint the engine cannot build (a tokenizer
that cannot spell JSON, a schema the grammar library refuses) is a 400 when the request is submitted, before
any decoding.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from focus_integrations.errors import InvalidOptionError
from focus_integrations.messages import append_turn
from focus_integrations.options import FIELDS, DecodingOptions
from focus_integrations.server.config import Limits
from focus_integrations.server.errors import bad_request
from focus_integrations.tool_calls import ToolCallStreamParser
from focus_integrations.tool_prompting import (
    forced_tool_call,
    format_instruction,
    renders_tools,
    tool_call_or_answer,
    tool_instructions,
    tool_turn_as_text,
    with_system_instructions,
    writes_call_markup,
)
from focus_integrations.vocabulary import ALIASES, WITHOUT_MEANING, decoding_layer

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder

ImageLoader = Callable[[str], Image.Image]

# The body's fields that are decoding options, in any vocabulary the mapping knows (OpenAI's max_tokens,
# stop, temperature, n, ...; every DecodingOptions field, the FOCUS settings). The other fields (messages,
# tools, stream, user, metadata, ...) are not options; unknown ones are ignored, as OpenAI servers do.
_OPTION_NAMES = frozenset({*FIELDS, *ALIASES, *WITHOUT_MEANING})
MAX_LEGACY_LOGPROBS = 5  # /v1/completions: logprobs is the number of top tokens, 0 to 5 (OpenAI's bound)
# What a request's response_format may be (tool_call is the server's own, built from tools and tool_choice).
_FORMATS = ("text", "json_object", "json_schema", "regex", "choice")
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
_ROLES["function"] = "tool"


@dataclass
class EngineRequest:
    """One request, ready for ``engine.submit(**submit_kwargs())``."""

    model: str
    messages: list[dict[str, Any]]
    options: dict[str, Any]
    n_images: int
    stream: bool = False
    include_usage: bool = False
    template_tools: list[dict[str, Any]] | None = None
    tool_names: list[str] = field(default_factory=list)
    answer_prefix: str = ""  # forced start of the answer (enforces tool_choice); part of the tool-call text
    forced_call: bool = False  # the answer is a required tool call, decoded under the call grammar
    forced_tool: str | None = None  # ... to this one tool (a named tool_choice)
    generic_json: bool = True  # bare JSON answers are read as tool calls (templates without call markup)

    def submit_kwargs(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "tools": self.template_tools,
            "require_images": False,  # text-only turns (agent steps) decode plainly
            "assistant_prefix": self.answer_prefix or None,
            **self.options,
        }

    def tool_parser(self) -> ToolCallStreamParser | None:
        """A parser that has seen the forced prefix already (None when no tools were offered)."""
        if not self.tool_names:
            return None
        parser = ToolCallStreamParser(tool_names=self.tool_names, generic_json=self.generic_json)
        if self.answer_prefix:
            parser.feed(self.answer_prefix)
        return parser


# ---------------------------------------------------------------------------------------------- requests


def _legacy_logprobs(named: dict[str, Any]) -> None:
    """``/v1/completions``: ``logprobs`` is a number of top tokens (0-5), not a flag."""
    top = named.pop("logprobs", None)
    if top is None:
        return
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_LEGACY_LOGPROBS:
        raise bad_request(f"'logprobs' must be an integer from 0 to {MAX_LEGACY_LOGPROBS}", param="logprobs")
    named["logprobs"] = True
    named["top_logprobs"] = top or None


def decoding_options(
    body: dict[str, Any], limits: Limits, *, context_length: int, legacy: bool = False
) -> dict[str, Any]:
    """The body's option fields -> engine options, through the library's one vocabulary
    (``vocabulary.decoding_layer``: max_tokens / max_completion_tokens, temperature 0 = greedy, a string stop,
    n / penalties / logit_bias refused unless neutral, None = not set), then the server's own limits.

    ``legacy``: a ``/v1/completions`` body (its ``logprobs`` is a number of top tokens)."""
    named = {name: body[name] for name in _OPTION_NAMES if name in body}
    if legacy:
        _legacy_logprobs(named)
    response_format = named.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, dict) or response_format.get("type") not in _FORMATS
    ):
        raise bad_request(
            f"'response_format' must be {{'type': {' | '.join(map(repr, _FORMATS))}, ...}}",
            param="response_format",
        )
    try:
        options = decoding_layer(named, where="in the request")
    except InvalidOptionError as err:
        raise bad_request(str(err), code="invalid_option") from None
    param = next(
        (name for name in ("max_completion_tokens", "max_tokens", "max_new_tokens") if name in named), None
    )
    max_tokens = options.get("max_new_tokens", limits.default_max_tokens)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise bad_request(f"'{param}' must be an integer >= 1", param=param)
    if max_tokens > limits.max_output_tokens:
        raise bad_request(
            f"'{param}' is {max_tokens}; this server generates at most {limits.max_output_tokens} tokens",
            param=param,
        )
    options["max_new_tokens"] = min(max_tokens, max(1, context_length - 1))
    if options.get("response_format", {}).get("type") == "text":
        del options["response_format"]  # OpenAI's explicit "no constraint"
    try:
        DecodingOptions.from_layers(options)
    except ValueError as err:
        raise bad_request(str(err), code="invalid_option") from None
    return options


def _stream_fields(body: dict[str, Any]) -> tuple[bool, bool]:
    """``stream`` and ``stream_options.include_usage``: booleans or absent (a string "false" is not false)."""
    stream, stream_options = body.get("stream"), body.get("stream_options")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("'stream' must be true or false", param="stream")
    if stream_options is None:
        return bool(stream), False
    usage = stream_options.get("include_usage") if isinstance(stream_options, dict) else None
    if not isinstance(stream_options, dict) or (usage is not None and not isinstance(usage, bool)):
        raise bad_request("'stream_options' must be {'include_usage': true | false}", param="stream_options")
    return bool(stream), bool(usage)


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Validated tools and the tool_choice as None (auto), "none", "any" or a tool name."""
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise bad_request("'tools' must be a list", param="tools")
    schemas: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type", "function") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
            or not isinstance(function.get("parameters", {}), dict)
        ):
            raise bad_request(
                f"tools[{index}] must be {{'type': 'function', 'function': {{'name': ..., 'parameters': ...}}}}",
                param=f"tools[{index}]",
            )
        schemas.append({"type": "function", "function": function})
    names = [s["function"]["name"] for s in schemas]
    if len(set(names)) != len(names):
        raise bad_request(f"tool names must be unique, got {names}", param="tools")
    choice = body.get("tool_choice")
    if choice is None or choice == "auto":
        return schemas, None
    if choice in ("none", "required"):
        if choice == "required" and not schemas:
            raise bad_request("tool_choice 'required' needs 'tools'", param="tool_choice")
        return schemas, "none" if choice == "none" else "any"
    if isinstance(choice, dict):
        name = (
            (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        )
        if not isinstance(name, str):
            raise bad_request(
                "tool_choice must name a function: {'type': 'function', 'function': {'name': ...}}"
            )
        if name not in names:
            raise bad_request(
                f"tool_choice names {name!r}, which is not one of the tools {names}", param="tool_choice"
            )
        return schemas, name
    raise bad_request(
        "tool_choice must be 'none', 'auto', 'required' or a named function", param="tool_choice"
    )


def _content(
    content: Any, where: str, load_image: ImageLoader, images: list[Image.Image], limits: Limits
) -> str | list[dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{where}: content must be a string or a list of content parts", param=where)
    items: list[dict[str, Any]] = []
    for position, part in enumerate(content):
        here = f"{where}.content[{position}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text"):
            if not isinstance(part.get("text"), str):
                raise bad_request(f"{here}: a text part needs a string 'text'", param=here)
            items.append({"type": "text", "text": part["text"]})
        elif kind in ("image_url", "input_image"):
            url = part.get("image_url")
            url = (
                url.get("url") if isinstance(url, dict) else url
            )  # {"url": ..., "detail": ...}: detail ignored
            if len(images) >= limits.max_images_per_request:
                raise bad_request(
                    f"too many images: this server accepts at most {limits.max_images_per_request} per request",
                    param=here,
                    code="too_many_images",
                )
            images.append(load_image(url))
            items.append({"type": "image", "image": images[-1]})
        elif kind == "refusal":
            continue
        else:
            raise bad_request(
                f"{here}: unsupported content part type {kind!r} (text and image_url only)", param=here
            )
    return items


def _text_only(content: str | list[dict[str, Any]], where: str) -> str:
    if isinstance(content, str):
        return content
    if any(item["type"] == "image" for item in content):
        raise bad_request(f"{where}: images are only allowed in user and tool messages", param=where)
    return "\n".join(item["text"] for item in content)


def chat_messages(
    raw: Any, load_image: ImageLoader, limits: Limits, *, tools_as_text: bool
) -> tuple[list[dict[str, Any]], int]:
    """OpenAI messages -> engine messages (images loaded) and the number of images."""
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty list", param="messages")
    images: list[Image.Image] = []
    call_names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        role = _ROLES.get(message.get("role")) if isinstance(message, dict) else None
        if role is None:
            raise bad_request(f"{where}: role must be one of {', '.join(_ROLES)}", param=where)
        if message.get("content") is None and role != "assistant":  # only an assistant turn may omit it
            raise bad_request(f"{where}: a {message['role']} message needs 'content'", param=where)
        content = _content(message.get("content"), where, load_image, images, limits)
        entry: dict[str, Any] = {"role": role}
        if role in ("system", "assistant"):
            entry["content"] = _text_only(content, where)
        else:
            entry["content"] = content
        if role == "assistant" and message.get("tool_calls"):
            entry["tool_calls"] = [
                _history_call(call, f"{where}.tool_calls[{i}]", call_names)
                for i, call in enumerate(message["tool_calls"])
            ]
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id:
                entry["tool_call_id"] = str(call_id)
            name = message.get("name") or call_names.get(str(call_id))
            if name:
                entry["name"] = name
            if isinstance(content, list) and not any(item["type"] == "image" for item in content):
                entry["content"] = _text_only(content, where)  # tool-aware templates print strings verbatim
        if tools_as_text:
            entry = tool_turn_as_text(entry)
        append_turn(out, entry)
    return out, len(images)


def _history_call(call: Any, where: str, call_names: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise bad_request(f"{where}: a tool call needs function.name", param=where)
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            arguments = {"_raw": arguments}  # a malformed earlier call is replayed, not refused
    call_id = str(call.get("id") or "")
    if call_id:
        call_names[call_id] = function["name"]
    return {"type": "function", "id": call_id, "function": {"name": function["name"], "arguments": arguments}}


def chat_request(
    body: dict[str, Any], decoder: FocusDecoder, limits: Limits, load_image: ImageLoader, model: str
) -> EngineRequest:
    """A ``/v1/chat/completions`` body -> an engine request (images loaded, tools put to the model)."""
    options = decoding_options(body, limits, context_length=decoder.context_length)
    tools, choice = _tools(body)
    if choice == "none":
        tools = []
    template_renders = renders_tools(decoder) if tools else True
    messages, n_images = chat_messages(
        body.get("messages"), load_image, limits, tools_as_text=bool(tools) and not template_renders
    )
    instructions = tool_instructions(tools, choice, template_renders)
    forced = forced_tool_call(decoder, tools, choice) if tools and choice else None
    answer_format = options.get("response_format")
    if forced is not None:
        # The call grammar constrains this turn; a response_format applies to the answer after the tool
        # results (OpenAI's order: a forced call first, the structured answer later).
        options["response_format"] = forced.response_format
    elif answer_format:
        instruction = format_instruction(answer_format)
        if instruction:
            instructions.append(instruction)
        if tools and answer_format["type"] in ("json_schema", "json_object"):
            # auto: the model may call a tool or answer in the format, and nothing else
            options["response_format"] = tool_call_or_answer(decoder, tools, answer_format)
    if instructions:
        messages = with_system_instructions(messages, instructions)
    stream, include_usage = _stream_fields(body)
    return EngineRequest(
        model=model,
        messages=messages,
        options=options,
        n_images=n_images,
        stream=stream,
        include_usage=include_usage,
        template_tools=tools if tools and template_renders else None,
        tool_names=[t["function"]["name"] for t in tools],
        answer_prefix=forced.prefix if forced is not None else "",
        forced_call=forced is not None,
        forced_tool=choice if forced is not None and choice != "any" else None,
        # A JSON answer next to tools: only markup marks a call (else the answer could be read as one).
        generic_json=not (tools and answer_format and forced is None and writes_call_markup(decoder)),
    )


def completion_request(
    body: dict[str, Any], decoder: FocusDecoder, limits: Limits, model: str
) -> EngineRequest:
    """A ``/v1/completions`` body: the prompt is one user turn through the chat template, text only."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request(
            "'prompt' must be a string (token-id prompts and batches are not supported)", param="prompt"
        )
    if body.get("echo"):
        raise bad_request("'echo' is not supported", param="echo")
    if body.get("suffix"):
        raise bad_request("'suffix' is not supported", param="suffix")
    if body.get("best_of") not in (None, 1):
        raise bad_request("only best_of=1 is supported", param="best_of")
    options = decoding_options(body, limits, context_length=decoder.context_length, legacy=True)
    stream, include_usage = _stream_fields(body)
    return EngineRequest(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        options=options,
        n_images=0,
        stream=stream,
        include_usage=include_usage,
    )
