"""Chat messages -> (conversation for the processor's chat template, images in prompt order).

Input follows the transformers chat format, in every form ``chat_format`` lists (message objects, the
``image`` / ``url`` / ``path`` / ``base64`` keys, OpenAI's ``image_url`` parts, the ``developer`` role). Images
may sit anywhere in user and tool turns; each becomes a ``{"type": "image"}`` placeholder in the conversation and is loaded (``images.load_image``) into the returned
list, so image k of the prompt is ``images[k]``. An image item may carry a ``"group"`` key (groups.py); a
``{"type": "video", "video": ...}`` item becomes its sampled frames, one image placeholder each (the reference
protocol: every frame is an image), grouped per frame or per video (media.py).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from focus_integrations.chat_format import as_content_item, as_message, as_message_list, image_source
from focus_integrations.errors import InvalidOptionError, PromptError
from focus_integrations.groups import group_indices, group_key
from focus_integrations.images import load_image
from focus_integrations.media import VideoSampling, is_video_item, shorthand_media_items, video_frames

ROLES = ("system", "user", "assistant", "tool")
_PASSTHROUGH_KEYS = ("tool_calls", "tool_call_id", "name")


@dataclass
class Conversation:
    """A chat ready for ``apply_chat_template``: image items are bare placeholders; pixels are in ``images``."""

    messages: list[dict[str, Any]]
    images: list[Image.Image]
    assistant_prefix: str = ""  # text the answer starts with (after the generation prompt); not in the output
    group_keys: list[Hashable] = field(default_factory=list)  # per image; empty: each image its own group

    @property
    def groups(self) -> tuple[int, ...]:
        """Group number (0..N-1, by first appearance) of each image; ungrouped images are groups of one."""
        if not self.group_keys:
            return tuple(range(len(self.images)))
        return group_indices(self.group_keys)


def from_prompt(
    images: Sequence[Any] | None,
    prompt: str,
    system: str | None = None,
    videos: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """The paper's protocol: an optional system turn, then one user turn ``[image] * N + [video] * M + [text]``.

    A list inside ``images`` is one image group (``images=[[a1, a2], [b1]]``).
    """
    if not isinstance(prompt, str):
        raise InvalidOptionError(f"prompt must be a string, got {type(prompt).__name__}")
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    content = shorthand_media_items(images, videos)
    content.append({"type": "text", "text": prompt})
    messages.append({"role": "user", "content": content})
    return messages


def check_messages(messages: Any) -> None:
    """A chat is a list of messages (or an object holding one in ``.messages``); a number is a mistake."""
    if not isinstance(messages, Iterable) and not hasattr(messages, "messages"):
        raise PromptError(
            f"messages must be a list of {{'role': ..., 'content': ...}} dicts, got {type(messages).__name__}"
        )


def prepare(
    messages: Sequence[dict[str, Any]],
    *,
    allow_remote_images: bool = False,
    video: VideoSampling | None = None,
) -> Conversation:
    """Validate ``messages``, load their images (and video frames, sampled as ``video`` says), and replace
    them with placeholders."""
    check_messages(messages)
    messages = as_message_list(messages)
    if isinstance(messages, (str, dict)) or not messages:
        raise InvalidOptionError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    out: list[dict[str, Any]] = []
    images: list[Image.Image] = []
    keys: list[Hashable] = []
    for index, message in enumerate(messages):
        message = as_message(message, index)
        role = message["role"]
        if role not in ROLES:
            raise InvalidOptionError(f"message {index}: unknown role {role!r}; use one of {', '.join(ROLES)}")
        content = message.get("content")
        if content is None:
            content = ""
        if isinstance(content, str):
            items: Any = content
        elif isinstance(content, (list, tuple)):
            items = []
            for item in content:
                item = as_content_item(item, index)
                if is_video_item(item):
                    _check_media_role(role, index)
                    for frame, key in video_frames(item, index, video or VideoSampling()):
                        images.append(frame)
                        keys.append(key)
                        items.append({"type": "image"})
                    continue
                placeholder, image = _content_item(item, index, allow_remote_images)
                if image is not None:
                    _check_media_role(role, index)
                    images.append(image)
                    keys.append(group_key(item, index))
                items.append(placeholder)
        else:
            raise InvalidOptionError(f"message {index}: content must be a string or a list of content items")
        prepared = {"role": role, "content": items}
        prepared.update({k: message[k] for k in _PASSTHROUGH_KEYS if k in message})
        out.append(prepared)
    return Conversation(out, images, group_keys=keys)


def _check_media_role(role: str, index: int) -> None:
    if role not in ("user", "tool"):
        raise InvalidOptionError(f"message {index}: images are only allowed in user and tool turns")


def _content_item(item: Any, index: int, allow_remote: bool) -> tuple[dict[str, Any], Image.Image | None]:
    item = as_content_item(item, index)
    if not isinstance(item, dict) or "type" not in item:
        raise InvalidOptionError(f"message {index}: content items must be dicts with a 'type'")
    kind = item["type"]
    if kind == "text":
        text = item.get("text")
        if not isinstance(text, str):
            raise InvalidOptionError(f"message {index}: a text item needs a string 'text'")
        return {"type": "text", "text": text}, None
    if kind == "image":
        return {"type": "image"}, load_image(image_source(item, index), allow_remote=allow_remote)
    raise InvalidOptionError(
        f"message {index}: unsupported content type {kind!r} (use 'text', 'image' or 'video')"
    )


def append_turn(turns: list[dict[str, Any]], turn: dict[str, Any]) -> None:
    """Append ``turn``, merging it into the previous one when both are system or both are user turns.

    Several chat templates (Gemma, Llama) reject two user turns in a row; one merged turn means the same.
    Adapters build their histories with this.
    """
    previous = turns[-1] if turns else None
    if (
        previous is None
        or previous["role"] != turn["role"]
        or turn["role"] not in ("system", "user")
        or "tool_calls" in previous
    ):
        turns.append(turn)
        return
    first, second = previous["content"], turn["content"]
    if isinstance(first, str) and isinstance(second, str):
        previous["content"] = "\n\n".join(part for part in (first, second) if part)
        return
    head, tail = (
        c if isinstance(c, list) else ([{"type": "text", "text": c}] if c else []) for c in (first, second)
    )
    if head and tail and head[-1]["type"] == "text" and tail[0]["type"] == "text":
        # Templates concatenate text items with no separator: keep the two turns apart.
        head = [*head[:-1], {"type": "text", "text": head[-1]["text"] + "\n\n" + tail[0]["text"]}]
        tail = tail[1:]
    previous["content"] = head + tail
