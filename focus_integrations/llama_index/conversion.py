"""LlamaIndex chat messages and image documents -> the engine's chat format (transformers style).

Every image is loaded here into an RGB ``PIL.Image`` through :func:`focus_integrations.images.load_image`, so
the engine receives pixels and the remote-URL policy is enforced in one place: LlamaIndex's own
``ImageBlock.resolve_image()`` / ``ImageNode.resolve_image()`` would fetch ``http(s)`` URLs with ``requests``
without asking, so they are never called on a URL.

Image groups: a :class:`GroupedImageBlock` (an ``ImageBlock`` with a ``group`` field) puts its image in a FOCUS
group; blocks with equal groups are one group (the photos of one product). LlamaIndex's prompt templates
re-create image blocks from their ``inline_url()``, so the block writes its group into that ``data:`` URI as a
media-type parameter (``data:image/png;focus-group=sku-12;base64,...``), which this module reads back.
``VideoBlock`` (``video`` bytes, ``path`` or a local ``url``; its ``fps``) becomes an engine video item.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    CitableBlock,
    CitationBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.schema import BaseNode, NodeWithScore
from PIL import Image

from focus_integrations.chat_format import function_call
from focus_integrations.errors import ImageLoadError, InvalidOptionError, VideoLoadError
from focus_integrations.images import RemoteImages, load_image
from focus_integrations.messages import append_turn

# LlamaIndex has more roles than chat templates know: fold them onto the four of the transformers format.
_ROLE_MAP: dict[MessageRole, str] = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.TOOL: "tool",
    MessageRole.FUNCTION: "tool",
}

ImageDocumentLike = (
    Any  # ImageBlock, ImageNode, ImageDocument, any node with an image_resource, NodeWithScore
)


GROUP_PARAMETER = "focus-group"


class GroupedImageBlock(ImageBlock):
    """An ``ImageBlock`` in a FOCUS image group: blocks with equal ``group`` are one group (one product's photos).

    ``ChatMessage(role="user", blocks=[GroupedImageBlock(path=a1, group="sku-1"), GroupedImageBlock(path=a2,
    group="sku-1"), ImageBlock(path=b), TextBlock(text="Which is cheaper?")])``.
    """

    group: str | int | None = None

    def inline_url(self) -> str:
        url = super().inline_url()
        if self.group is None:
            return url
        head, sep, data = url.partition(";base64,")
        return f"{head};{GROUP_PARAMETER}={urllib.parse.quote(str(self.group), safe='')}{sep}{data}"


def image_block_group(block: ImageBlock) -> str | int | None:
    """The group of an image block: its ``group`` field, or the ``focus-group`` parameter of its data URI."""
    group = getattr(block, "group", None)
    if group is not None:
        return group
    url = str(block.url) if block.url is not None else ""
    if not url.startswith("data:"):
        return None
    header = url[5:].split(",", 1)[0]
    for parameter in header.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name == GROUP_PARAMETER and value:
            return urllib.parse.unquote(value)
    return None


def video_block_item(block: VideoBlock) -> dict[str, Any]:
    """A ``VideoBlock`` as an engine video item (sampled into frames by the engine; ``fps`` kept)."""
    if block.video is not None:
        try:
            source: Any = block.resolve_video().read()
        except ValueError as err:
            raise VideoLoadError(f"VideoBlock holds no usable video data: {err}") from None
    elif block.path is not None:
        source = str(block.path)
    elif block.url is not None:
        source = str(block.url)
    else:
        raise VideoLoadError("VideoBlock has no video, path or url")
    item: dict[str, Any] = {"type": "video", "video": source}
    if block.fps:
        item["fps"] = float(block.fps)
    group = getattr(block, "group", None)
    if group is not None:
        item["group"] = group
    return item


def image_block_to_pil(block: ImageBlock, *, allow_remote_images: bool | RemoteImages = False) -> Image.Image:
    """Load an ``ImageBlock`` from whichever source it carries: inline bytes, a path, or a URL.

    URLs may be ``data:``, ``file://`` or ``http(s)://`` (the last only with ``allow_remote_images=True``).
    """
    if block.image is not None:
        try:
            # The block's validator stores inline bytes as base64; resolve_image() undoes that (and reads IOBase).
            data = block.resolve_image().read()
        except ValueError as err:
            raise ImageLoadError(f"ImageBlock holds no usable image data: {err}") from None
        return load_image(data)
    if block.path is not None:
        return load_image(block.path)
    if block.url is not None:
        return load_image(str(block.url), allow_remote=allow_remote_images)
    raise ImageLoadError("ImageBlock has no image, path or url")


def image_document_to_pil(
    document: ImageDocumentLike, *, allow_remote_images: bool | RemoteImages = False
) -> Image.Image:
    """Load the image of an ``ImageNode`` / ``ImageDocument`` / ``ImageBlock`` (older ``image_documents`` API)."""
    if isinstance(document, NodeWithScore):
        document = document.node
    if isinstance(document, ImageBlock):
        return image_block_to_pil(document, allow_remote_images=allow_remote_images)
    if isinstance(document, Image.Image):
        return load_image(document)
    inline = getattr(document, "image", None)
    path = getattr(document, "image_path", None)
    url = getattr(document, "image_url", None)
    resource = getattr(document, "image_resource", None)
    if inline is None and path is None and url is None and resource is not None:
        if resource.data:
            return load_image(_maybe_base64(resource.data))
        path = resource.path
        url = str(resource.url) if resource.url else None
    if inline:
        try:
            return load_image(base64.b64decode(inline, validate=True))
        except (binascii.Error, ValueError):
            raise ImageLoadError("the node's 'image' field is not valid base64") from None
    if path:
        return load_image(str(path))
    if url:
        return load_image(str(url), allow_remote=allow_remote_images)
    kind = type(document).__name__
    if isinstance(document, BaseNode):
        raise ImageLoadError(f"{kind} {document.node_id} has no image (image, image_path or image_url)")
    raise ImageLoadError(
        f"unsupported image document {kind}: pass ImageBlock, ImageNode, ImageDocument or NodeWithScore"
    )


def _maybe_base64(data: bytes) -> bytes:
    # MediaResource.data is documented as base64 but may hold raw bytes; image formats never decode as base64.
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return data


def _flatten_blocks(blocks: Iterable[Any]) -> Iterable[Any]:
    for block in blocks:
        if isinstance(block, CitableBlock):
            yield from _flatten_blocks(block.content)
        elif isinstance(block, CitationBlock):
            yield block.cited_content
        else:
            yield block


def chat_messages_to_engine(
    messages: Sequence[ChatMessage], *, allow_remote_images: bool | RemoteImages = False
) -> list[dict[str, Any]]:
    """Convert LlamaIndex ``ChatMessage``s to engine messages, images loaded, in prompt order.

    Text blocks stay where they are relative to the images (a message with images becomes a content list);
    a message with text only becomes one string joined like ``ChatMessage.content`` does. Consecutive system
    or user messages are merged into one turn (several templates require alternating roles). Prompt-caching hints
    and reasoning traces are dropped; assistant ``ToolCallBlock``s become ``tool_calls``; ``VideoBlock``s become
    video items; audio and document blocks raise :class:`InvalidOptionError` (the engine is image, video + text).
    """
    if isinstance(messages, ChatMessage) or not isinstance(messages, Sequence):
        raise InvalidOptionError("messages must be a sequence of llama_index ChatMessage objects")
    if not messages:
        raise InvalidOptionError("messages must not be empty")
    converted: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, ChatMessage):
            raise InvalidOptionError(f"message {index} is a {type(message).__name__}, expected ChatMessage")
        role = _ROLE_MAP.get(message.role)
        if role is None:
            raise InvalidOptionError(f"message {index}: unsupported role {message.role!r}")
        items: list[dict[str, Any]] = []
        tool_calls: list[dict[str, Any]] = []
        for block in _flatten_blocks(message.blocks):
            if isinstance(block, TextBlock):
                items.append({"type": "text", "text": block.text})
            elif isinstance(block, ImageBlock):
                image = image_block_to_pil(block, allow_remote_images=allow_remote_images)
                group = image_block_group(block)
                items.append(
                    {"type": "image", "image": image} | ({"group": group} if group is not None else {})
                )
            elif isinstance(block, VideoBlock):
                items.append(video_block_item(block))
            elif isinstance(block, ToolCallBlock):
                tool_calls.append(function_call(block.tool_call_id, block.tool_name, block.tool_kwargs))
            elif isinstance(block, (CachePoint, ThinkingBlock)):
                continue  # provider hints / reasoning traces: not part of what a local chat template renders
            else:
                raise InvalidOptionError(
                    f"message {index}: {type(block).__name__} is not supported (FOCUS models take text and images)"
                )
        entry: dict[str, Any] = {"role": role}
        if any(item["type"] != "text" for item in items):
            entry["content"] = items
        else:
            entry["content"] = "\n".join(item["text"] for item in items)
        if tool_calls:
            entry["tool_calls"] = tool_calls
        if role == "tool":
            tool_call_id = message.additional_kwargs.get("tool_call_id")
            if tool_call_id is not None:
                entry["tool_call_id"] = tool_call_id
            name = message.additional_kwargs.get("name") or message.additional_kwargs.get("tool_name")
            if name is not None:
                entry["name"] = name
        append_turn(converted, entry)
    return converted


def prompt_to_engine(
    prompt: str,
    image_documents: Sequence[ImageDocumentLike] | None = None,
    *,
    system_prompt: str | None = None,
    allow_remote_images: bool | RemoteImages = False,
) -> list[dict[str, Any]]:
    """A completion prompt (plus the older API's ``image_documents``) as one user turn: images first.

    Images before the text is the paper's protocol and what ``MultiModalLLM.complete`` callers expect.
    """
    if not isinstance(prompt, str):
        raise InvalidOptionError(f"prompt must be a string, got {type(prompt).__name__}")
    if image_documents is not None and (
        isinstance(image_documents, (str, bytes)) or not isinstance(image_documents, Sequence)
    ):
        raise InvalidOptionError("image_documents must be a list of ImageNode / ImageDocument / ImageBlock")
    images = [
        image_document_to_pil(doc, allow_remote_images=allow_remote_images) for doc in image_documents or ()
    ]
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    if images:
        content: Any = [{"type": "image", "image": image} for image in images] + [
            {"type": "text", "text": prompt}
        ]
    else:
        content = prompt
    messages.append({"role": "user", "content": content})
    return messages
