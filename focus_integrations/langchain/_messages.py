"""LangChain messages -> engine messages (the transformers chat format of docs/architecture.md).

Every image form LangChain users send is read through ``message.content_blocks`` (which normalises v1
blocks, v0 ``source_type`` blocks, OpenAI ``image_url`` dicts and Anthropic / Gemini / Bedrock shapes into
v1 ``{"type": "image", ...}`` blocks), plus the few shapes it leaves as ``non_standard`` (``image_url`` given
as a bare string, the Responses API's ``input_image``). Each image is loaded here, so the engine receives
decoded RGB images and never sees a URL:

* ``base64`` -> bytes; ``url`` -> ``data:`` URI, ``file://`` URL or local path (``load_image``); ``http(s)``
  only when the caller allows remote images, then with the size and time limits of ``load_image``;
* ``file_id`` -> the caller's ``file_resolver(file_id)`` (anything ``load_image`` accepts);
* ``{"type": "file", "mime_type": "image/..."}`` -> an image; other files and audio are refused.

Image groups: an image block's ``"group"`` (a v1 block's ``extras={"group": ...}``, or a top-level key) puts it
in a FOCUS group; blocks with equal keys are one group (the photos of one product). Video: v1 ``{"type":
"video"}`` blocks (``base64``, ``url`` as a local path / ``file://`` / ``data:``, ``file_id``; and ``file``
blocks with a ``video/...`` mime type) become engine video items, sampled into frames by the engine
(``num_frames``, ``fps``, ``video_masking``; a block's own ``num_frames`` / ``fps``, top level or in
``extras``, apply to that video, as a LlamaIndex ``VideoBlock.fps`` does); remote video URLs are refused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from PIL import Image

from focus_integrations.chat_format import function_call
from focus_integrations.errors import ImageLoadError, InvalidOptionError, VideoLoadError
from focus_integrations.images import REMOTE_MAX_BYTES, REMOTE_TIMEOUT_S, RemoteImages, load_image
from focus_integrations.messages import append_turn
from focus_integrations.tool_prompting import tool_turn_as_text as _tool_turn_as_text

FileResolver = Callable[[str], Any]
"""Maps a ``file_id`` to anything ``load_image`` accepts (PIL image, path, bytes, data URI, ...)."""

_ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}


@dataclass(frozen=True)
class ImagePolicy:
    """How image references are resolved: remote fetching (off by default), its limits, file ids."""

    allow_remote: bool | RemoteImages = False  # a RemoteImages' own limits replace max_bytes / timeout
    max_bytes: int = REMOTE_MAX_BYTES
    timeout: float = REMOTE_TIMEOUT_S
    file_resolver: FileResolver | None = None

    def load(self, source: Any, where: str) -> Image.Image:
        try:
            return load_image(
                source, allow_remote=self.allow_remote, max_bytes=self.max_bytes, timeout=self.timeout
            )
        except ImageLoadError as exc:
            # Same type (RemoteImageError stays RemoteImageError), with the message's position added.
            raise type(exc)(f"{where}: {exc}") from exc


def _image_from_block(block: dict[str, Any], policy: ImagePolicy, where: str) -> Image.Image:
    """One v1 image block (or an image ``file`` block) -> RGB image."""
    if block.get("image") is not None:  # transformers-style {"type": "image", "image": PIL | path}
        return policy.load(block["image"], where)
    if block.get("base64"):
        try:
            data = base64.b64decode(block["base64"], validate=False)
        except (binascii.Error, ValueError) as exc:
            raise ImageLoadError(f"{where}: image base64 data is not valid base64: {exc}") from exc
        return policy.load(data, where)
    if block.get("url"):
        return policy.load(block["url"], where)
    if block.get("file_id"):
        if policy.file_resolver is None:
            raise ImageLoadError(
                f"{where}: image block refers to file_id {block['file_id']!r}, but no file_resolver is set "
                "(ChatFocus(file_resolver=callable returning a path, bytes or PIL image))"
            )
        try:
            resolved = policy.file_resolver(block["file_id"])
        except Exception as exc:  # the resolver is user code: report what failed and where
            raise ImageLoadError(f"{where}: file_resolver failed for {block['file_id']!r}: {exc}") from exc
        if resolved is None:
            raise ImageLoadError(f"{where}: file_resolver found nothing for file_id {block['file_id']!r}")
        return policy.load(resolved, where)
    raise ImageLoadError(f"{where}: image block has no base64, url or file_id")


def _group_of(block: dict[str, Any]) -> dict[str, Any]:
    """``{"group": key}`` when the block names a FOCUS image group (top level or v1 ``extras``), else ``{}``."""
    extras = block.get("extras")
    key = block.get("group")
    if key is None and isinstance(extras, dict):
        key = extras.get("group")
    return {} if key is None else {"group": key}


def _sampling_of(block: dict[str, Any]) -> dict[str, Any]:
    """A video block's own ``num_frames`` / ``fps`` (top level or v1 ``extras``), which the engine applies to
    that video instead of the request's: LlamaIndex's ``VideoBlock.fps`` and transformers' video items carry
    them the same way."""
    extras = block.get("extras") if isinstance(block.get("extras"), dict) else {}
    found = {key: block.get(key, extras.get(key)) for key in ("num_frames", "fps")}
    return {key: value for key, value in found.items() if value is not None}


def _video_source(block: dict[str, Any], policy: ImagePolicy, where: str) -> Any:
    """What a v1 video block points at, for the engine's video sampler (bytes, a path, a list of frames)."""
    if block.get("video") is not None:  # transformers-style {"type": "video", "video": path | frames}
        return block["video"]
    if block.get("base64"):
        try:
            return base64.b64decode(block["base64"], validate=False)
        except (binascii.Error, ValueError) as exc:
            raise VideoLoadError(f"{where}: video base64 data is not valid base64: {exc}") from exc
    if block.get("url"):
        return block["url"]
    if block.get("file_id"):
        if policy.file_resolver is None:
            raise VideoLoadError(
                f"{where}: video block refers to file_id {block['file_id']!r}, but no file_resolver is set"
            )
        resolved = policy.file_resolver(block["file_id"])
        if resolved is None:
            raise VideoLoadError(f"{where}: file_resolver found nothing for file_id {block['file_id']!r}")
        return resolved
    raise VideoLoadError(f"{where}: video block has no base64, url or file_id")


def _non_standard_image_url(value: dict[str, Any]) -> str | None:
    """URL of the image shapes ``content_blocks`` leaves as non_standard, else None."""
    kind = value.get("type")
    if kind == "image_url":
        url = value.get("image_url")
        if isinstance(url, dict):
            url = url.get("url")
        return url if isinstance(url, str) else None
    if kind == "input_image":  # OpenAI Responses API
        url = value.get("image_url")
        return url if isinstance(url, str) else None
    return None


def _content_items(message: BaseMessage, policy: ImagePolicy, where: str) -> list[dict[str, Any]]:
    """Text and image items of one message, in order."""
    items: list[dict[str, Any]] = []
    for position, block in enumerate(message.content_blocks):
        kind = block.get("type")
        here = f"{where}, block {position}"
        if kind == "text":
            if block.get("text"):
                items.append({"type": "text", "text": block["text"]})
        elif kind == "image" or (kind == "file" and str(block.get("mime_type", "")).startswith("image/")):
            image = _image_from_block(dict(block), policy, here)
            items.append({"type": "image", "image": image, **_group_of(dict(block))})
        elif kind == "video" or (kind == "file" and str(block.get("mime_type", "")).startswith("video/")):
            source = _video_source(dict(block), policy, here)
            items.append(
                {"type": "video", "video": source, **_group_of(dict(block)), **_sampling_of(dict(block))}
            )
        elif kind == "non_standard":
            value = block.get("value")
            url = _non_standard_image_url(value) if isinstance(value, dict) else None
            if url is None and isinstance(message, AIMessage):
                # Provider-specific parts of an earlier answer (Anthropic tool_use, thinking...): the calls
                # are in AIMessage.tool_calls; the rest is the provider's state, not something to replay.
                continue
            if url is None:
                raise InvalidOptionError(f"{here}: unsupported content block {value!r:.120}")
            items.append({"type": "image", "image": policy.load(url, here), **_group_of(value)})
        elif kind in ("tool_call", "tool_call_chunk", "invalid_tool_call", "server_tool_call"):
            continue  # carried by AIMessage.tool_calls, rendered by the chat template
        elif kind in ("reasoning", "server_tool_result"):
            continue  # provider-side state of earlier turns; not something to feed back to the model
        else:
            raise InvalidOptionError(
                f"{here}: content of type {kind!r} is not supported by ChatFocus (text, images and video only)"
            )
    return items


def _plain_text(items: list[dict[str, Any]]) -> str:
    return "\n".join(item["text"] for item in items if item["type"] == "text")


def to_engine_messages(
    messages: Sequence[BaseMessage], policy: ImagePolicy, *, tool_turns_as_text: bool = False
) -> list[dict[str, Any]]:
    """Convert a LangChain history into engine messages (images loaded, tool calls kept structured).

    Consecutive messages of the same role (other than tool results) are merged: several chat templates
    (Gemma, Llama) reject two user turns in a row, and the merged turn means the same thing.

    ``tool_turns_as_text=True`` is for chat templates with no tool syntax: an assistant's tool calls become
    its text (the JSON call format ChatFocus teaches such models), and a tool result becomes a user turn
    that says which call it answers, images included, so no template drops or rejects it.
    """
    if not messages:
        raise InvalidOptionError("ChatFocus needs at least one message")
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"message {index} ({message.type})"
        if isinstance(message, SystemMessage):
            role = "system"
        elif isinstance(message, HumanMessage):
            role = "user"
        elif isinstance(message, AIMessage):
            role = "assistant"
        elif isinstance(message, (ToolMessage, FunctionMessage)):
            role = "tool"
        elif isinstance(message, ChatMessage):
            role = _ROLE_ALIASES.get(message.role.lower(), "")
            if not role:
                raise InvalidOptionError(f"{where}: unknown chat role {message.role!r}")
        else:
            raise InvalidOptionError(f"{where}: unsupported message type {type(message).__name__}")
        items = _content_items(message, policy, where)
        if role in ("system", "assistant") and any(item["type"] in ("image", "video") for item in items):
            raise InvalidOptionError(f"{where}: images are only supported in human and tool messages")
        entry: dict[str, Any] = {"role": role}
        if role == "system":
            entry["content"] = _plain_text(items)
        elif role == "assistant":
            entry["content"] = _plain_text(items)
            calls = getattr(message, "tool_calls", None) or []
            if calls:
                entry["tool_calls"] = [
                    function_call(call.get("id"), call["name"], call.get("args") or {}) for call in calls
                ]
        elif role == "tool":
            # Text-only results stay a string: tool-aware templates print string content verbatim.
            entry["content"] = items if any(i["type"] != "text" for i in items) else _plain_text(items)
            if isinstance(message, ToolMessage):
                entry["tool_call_id"] = message.tool_call_id
                if getattr(message, "status", "success") == "error":
                    entry["content"] = _prefix_error(entry["content"])
            if message.name:
                entry["name"] = message.name
        else:
            entry["content"] = items
        if tool_turns_as_text:
            entry = _tool_turn_as_text(entry)
            role = entry["role"]
        append_turn(out, entry)
    return out


def _prefix_error(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Tell the model a tool failed: templates have no field for ToolMessage.status."""
    if isinstance(content, str):
        return content if content.lower().startswith("error") else f"Error: {content}"
    return [{"type": "text", "text": "Error:"}, *content]
