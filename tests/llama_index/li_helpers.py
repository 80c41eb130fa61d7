"""Helpers shared by the LlamaIndex adapter tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw


def shape_image(colour: str, shape: str, size: int = 40) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    box = (6, 6, size - 6, size - 6)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(size // 2, 4), (size - 4, size - 4), (4, size - 4)], fill=colour)
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()


def llm_events_handler():
    """A LlamaIndex event handler that records what is sent to (``starts``) and got back from (``ends``) the
    LLM, through LlamaIndex's own instrumentation events."""
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMChatStartEvent

    class LLMEvents(BaseEventHandler):
        starts: list = []
        ends: list = []

        @classmethod
        def class_name(cls) -> str:
            return "LLMEvents"

        def handle(self, event, **kwargs) -> None:
            if isinstance(event, LLMChatStartEvent):
                self.starts.append(event)
            elif isinstance(event, LLMChatEndEvent):
                self.ends.append(event)

    return LLMEvents(starts=[], ends=[])
