"""Captions made by a vision-language model at ingest (for images with no caption in a sidecar)."""

from __future__ import annotations

from typing import Any

from PIL import Image

DEFAULT_CAPTION_PROMPT = "Describe this image in a few words."


class DecoderCaptioner:
    """``captioner(image) -> str`` backed by a :class:`~focus_integrations.FocusDecoder`.

    With one image FOCUS contrasts the clean row against an all-noise row; pass ``mode="vanilla"`` for plain
    decoding. Extra keyword arguments are decoding options (``max_new_tokens``, ``seed``, ...).
    """

    def __init__(
        self,
        decoder: Any,
        *,
        prompt: str = DEFAULT_CAPTION_PROMPT,
        max_new_tokens: int = 24,
        seed: int | None = 0,
        **options: Any,
    ) -> None:
        self.decoder = decoder
        self.prompt = prompt
        # A fixed seed by default: the noise row is then the same on every run, so one image always gets the
        # same caption (re-indexing reproduces the store).
        self.options = {"max_new_tokens": max_new_tokens, "seed": seed, **options}

    def __call__(self, image: Image.Image) -> str:
        output = self.decoder.generate(images=[image], prompt=self.prompt, **self.options)
        return " ".join(output.text.split())  # one line: captions are stored as documents and shown in lists
