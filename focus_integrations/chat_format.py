"""The chat formats users send, normalised to the one ``messages.prepare`` reads.

Accepted, as transformers' ``apply_chat_template`` accepts them (``processing_utils`` and
``chat_template_utils`` of transformers 5):

* messages as dicts, dataclasses or pydantic models (the OpenAI SDK's message objects), or an object with a
  ``.messages`` list; keys whose value is ``None`` are dropped (``content=None``, ``tool_calls=None``);
* image items ``{"type": "image", <key>: source}`` with the key ``image``, ``url``, ``path`` or ``base64``
  (looked up in that order); the source is anything :func:`~focus_integrations.images.load_image` reads;
* OpenAI's ``{"type": "image_url", "image_url": "..." | {"url": "...", "detail": ...}}`` (``detail`` is
  accepted and ignored: the processor decides the resolution) and the Responses API's ``input_image`` /
  ``input_text`` / ``output_text`` parts, and an assistant's ``refusal`` part (as text);
* the ``developer`` role (OpenAI's newer name for ``system``) and the legacy ``function`` role (a tool result);
* assistant ``tool_calls`` whose ``arguments`` are a JSON string (OpenAI's wire form): parsed into the dict
  chat templates expect.

Text must be valid Unicode: a lone surrogate (what undecodable bytes become in ``sys.argv`` or a file name)
raises :class:`InvalidOptionError` here instead of a ``TypeError`` deep inside the tokenizer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from focus_integrations.errors import ImageLoadError, InvalidOptionError
from focus_integrations.images import decode_base64_image

ROLE_ALIASES = {"developer": "system", "function": "tool"}
IMAGE_KEYS = ("image", "url", "path", "base64")  # transformers' order


def as_message_list(messages: Any) -> Any:
    """A conversation object (anything with a ``.messages`` list) as its list; anything else unchanged."""
    inner = getattr(messages, "messages", None)
    return inner if isinstance(inner, (list, tuple)) else messages


def as_message(message: Any, index: int) -> dict[str, Any]:
    """One message as a plain dict: ``None`` values dropped, role aliases mapped, string content checked."""
    if not isinstance(message, Mapping):
        message = _object_as_dict(message)
    if not isinstance(message, Mapping) or message.get("role") is None:
        raise InvalidOptionError(f"message {index} must be a dict with 'role' and 'content'")
    plain = {key: value for key, value in message.items() if value is not None}
    role = plain["role"]
    if isinstance(role, str):
        plain["role"] = ROLE_ALIASES.get(role, role)
    content = plain.get("content")
    if isinstance(content, str):
        check_text(content, f"message {index}")
    elif isinstance(content, (list, tuple)):
        plain["content"] = [_object_as_dict(item) for item in content]
    if "tool_calls" in plain:
        plain["tool_calls"] = _tool_calls(plain["tool_calls"], index)
    return plain


def as_content_item(item: Any, index: int) -> Any:
    """One content item in the canonical form: ``{"type": "text", "text"}`` or ``{"type": "image", <key>}``.

    Items of other types are returned as they are (``messages.prepare`` decides about them).
    """
    if isinstance(item, str):
        return {"type": "text", "text": check_text(item, f"message {index}")}
    if not isinstance(item, Mapping):
        return item
    kind = item.get("type")
    if kind in ("text", "input_text", "output_text", "refusal"):
        key = "refusal" if kind == "refusal" else "text"
        text = item.get(key)
        if not isinstance(text, str):
            raise InvalidOptionError(f"message {index}: a {kind} item needs a string {key!r}")
        return {**item, "type": "text", "text": check_text(text, f"message {index}")}
    if kind in ("image_url", "input_image"):
        url = item.get("image_url")
        if isinstance(url, Mapping):
            url = url.get("url")  # {"url": ..., "detail": ...}: the detail is the processor's business
        if url is None and kind == "input_image":
            raise InvalidOptionError(
                f"message {index}: an input_image item needs an image_url (file_id references are not supported)"
            )
        if not isinstance(url, str) or not url:
            raise InvalidOptionError(f"message {index}: an {kind} item needs a URL string in 'image_url'")
        extra = {k: v for k, v in item.items() if k not in ("type", "image_url", "detail")}
        return {**extra, "type": "image", "url": url}
    return item


def image_source(item: Mapping[str, Any], index: int) -> Any:
    """What an image item points at (for ``load_image``): its first set key of ``IMAGE_KEYS``.

    A ``base64`` value (with or without a ``data:`` prefix) is decoded to bytes here.
    """
    for key in IMAGE_KEYS:
        value = item.get(key)
        if value is None:
            continue
        if key == "base64":
            try:
                return decode_base64_image(value)
            except ImageLoadError as err:
                raise ImageLoadError(f"message {index}: {err}") from None
        return value
    raise InvalidOptionError(f"message {index}: an image item needs one of {', '.join(IMAGE_KEYS)}")


def check_text(text: str, where: str) -> str:
    """``text`` if it is valid Unicode (encodable as UTF-8), else :class:`InvalidOptionError` saying where."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start : err.end]
        hint = (
            " (undecodable bytes: decode the input as UTF-8, or with the encoding it was written in)"
            if all(0xDC80 <= ord(c) <= 0xDCFF for c in bad)
            else ""
        )
        raise InvalidOptionError(
            f"{where}: text is not valid Unicode: lone surrogate {bad!r} at position {err.start}{hint}"
        ) from None
    return text


def function_call(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    """One assistant tool call in the shape chat templates render (OpenAI's, with the arguments a dict): what
    every adapter turns its framework's call objects into."""
    return {"type": "function", "id": call_id or "", "function": {"name": name, "arguments": arguments}}


def _object_as_dict(value: Any) -> Any:
    """Dataclass and pydantic message objects (OpenAI SDK) as dicts; media (PIL, arrays, bytes) untouched."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump()
    return value


def _tool_calls(calls: Any, index: int) -> Any:
    if not isinstance(calls, Sequence) or isinstance(calls, (str, bytes)):
        raise InvalidOptionError(f"message {index}: tool_calls must be a list")
    normalised = []
    for call in calls:
        call = _object_as_dict(call)
        if isinstance(call, Mapping):
            call = {k: v for k, v in call.items() if v is not None}
            function = _object_as_dict(call.get("function"))
            if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
                function = {**function, "arguments": _parsed_arguments(function["arguments"])}
            if function is not None:
                call["function"] = function
        normalised.append(call)
    return normalised


def _parsed_arguments(arguments: str) -> Any:
    """OpenAI sends tool-call arguments as a JSON string; templates render a dict. Not JSON: kept as text."""
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments
    return parsed if isinstance(parsed, dict) else arguments
