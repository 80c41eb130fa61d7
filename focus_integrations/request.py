"""Request preparation: messages -> conversation -> rendered prompt, rule, masked rows, processor outputs.

Two phases, so a scheduler can do the CPU work when a request arrives and the model work when it runs:

- ``prepare_request`` (CPU only): render the chat template, build the logits rule, draw the noise, run the
  processor, check the context length. Bad input fails here, before any model work.
- ``row_groups`` (model): encode the images (once per distinct image when the noise is shared) and build the
  row groups the decode runs, ``chunk`` rows per group.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from focus_integrations.decode import RowGroup
from focus_integrations.errors import ContextLengthError, InvalidOptionError, NoImageError, PromptError
from focus_integrations.logits import LogitsRule, build_rule
from focus_integrations.media import VideoSampling
from focus_integrations.messages import Conversation, from_prompt, prepare
from focus_integrations.options import DecodingOptions
from focus_integrations.prefix import can_share_prefix
from focus_integrations.rows import RowImages, encode_rows, mask_images
from focus_integrations.vision import SharedEncoding, distinct_images_inputs, encode_shared

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder


@dataclass
class PreparedRequest:
    """One request after the CPU work (prompt rendered, noise drawn, processor run); no model work yet."""

    options: DecodingOptions
    rule: LogitsRule
    prompt: str
    row_images: RowImages
    add_special_tokens: bool
    shared_vision: bool  # vision features once per distinct image (needs one noise draw per slot)
    prompt_ids: torch.Tensor
    n_images: int
    n_groups: int  # FOCUS's N: image groups (each image its own group unless the request groups them)
    max_new_tokens: int
    sources: dict[str, str] | None = None  # which layer set each option (decoder.resolve_options)
    # Processor outputs: the distinct-images encoding (shared vision), or the rows' inputs per group size.
    encoded: dict[int, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    encoding: SharedEncoding | None = field(default=None, repr=False)

    @property
    def prompt_length(self) -> int:
        return int(self.prompt_ids.shape[0])

    @property
    def n_rows(self) -> int:
        return self.rule.n_rows

    @property
    def chunk(self) -> int:
        """Rows per group the options ask for (all rows when unset)."""
        return min(self.options.row_chunk_size or self.n_rows, self.n_rows)

    def settings(self) -> dict[str, Any]:
        return self.options.as_settings() | {
            "rule": self.rule.name,
            "alpha": self.rule.alpha,  # the contrast weight applied to this request (per-N tables resolved)
            "n_images": self.n_images,
            "n_groups": self.n_groups,
            "n_rows": self.rule.n_rows,
            "max_new_tokens": self.max_new_tokens,
            "sources": dict(self.sources or {}),
        }


def build_conversation(
    images: Any,
    prompt: str | None,
    messages: Any,
    system: str | None,
    *,
    allow_remote_images: bool,
    require_images: bool = True,
    assistant_prefix: str | None = None,
    videos: Any = None,
    video: VideoSampling | None = None,
) -> Conversation:
    """The engine input (``messages``, or ``images``/``videos`` + ``prompt``) as a conversation with loaded
    images; video items become their sampled frames (``video``)."""
    if not isinstance(require_images, bool):
        raise InvalidOptionError(f"require_images must be True or False, got {require_images!r}")
    if assistant_prefix is not None and not isinstance(assistant_prefix, str):
        raise InvalidOptionError(f"assistant_prefix must be a string or None, got {assistant_prefix!r}")
    if messages is not None and (prompt is not None or images is not None or videos is not None):
        raise PromptError("pass either messages, or images/videos and prompt, not both")
    if messages is None:
        if not isinstance(prompt, str):
            raise PromptError(f"pass a prompt string (with images) or messages, got prompt={prompt!r:.100}")
        messages = from_prompt(_as_list(images), prompt, system, _as_list(videos))
    conversation = prepare(messages, allow_remote_images=allow_remote_images, video=video)
    conversation.assistant_prefix = assistant_prefix or ""
    if require_images and not conversation.images:
        raise NoImageError(
            "the request holds no image; FOCUS decodes questions about images "
            "(pass require_images=False to decode text-only turns plainly)"
        )
    return conversation


def _as_list(media: Any) -> list[Any] | None:
    """One image or video given bare (a path, bytes, a PIL image) -> a list of one."""
    if media is None:
        return None
    if isinstance(media, (str, bytes, bytearray, os.PathLike)) or not isinstance(media, Sequence):
        return [media]
    return list(media)


def render(
    processor: Any,
    conversation: Conversation,
    tools: Sequence[dict[str, Any]] | None,
    template_kwargs: dict[str, Any] | None = None,
) -> str:
    """The chat template with a generation prompt; ``template_kwargs`` (``chat_template_kwargs``) go along."""
    kwargs: dict[str, Any] = dict(template_kwargs or {})
    kwargs |= {"add_generation_prompt": True, "tokenize": False}
    if tools:
        if isinstance(tools, (str, bytes, dict)) or not isinstance(tools, Sequence):
            raise PromptError(f"tools must be a list of tool schemas or functions, got {tools!r}"[:300])
        kwargs["tools"] = list(tools)
    try:
        return processor.apply_chat_template(conversation.messages, **kwargs) + conversation.assistant_prefix
    except Exception as err:  # jinja errors, missing template: all mean "this chat cannot be rendered"
        raise PromptError(f"the model's chat template could not render these messages: {err}") from None


def wants_special_tokens(tokenizer: Any, prompt: str) -> bool:
    # A template that already writes BOS (Gemma3) must not get a second one from the tokenizer.
    bos = getattr(tokenizer, "bos_token", None)
    return not (bos and prompt.startswith(bos))


def prepare_request(
    decoder: FocusDecoder,
    conversation: Conversation,
    tools: Any,
    options: DecodingOptions,
    *,
    sources: dict[str, str] | None = None,
) -> PreparedRequest:
    """The CPU work of a request; raises ``PromptError`` / ``ContextLengthError`` before any model work."""
    decoder.check_token_ids(options)
    prompt = render(decoder.processor, conversation, tools, options.chat_template_kwargs)
    image_groups = conversation.groups
    rule = build_rule(options, len(conversation.images), decoder.banned_token_ids, groups=image_groups)
    rng = np.random.default_rng(options.seed)
    row_images = mask_images(conversation.images, rule.row_masks, options, rng)
    shared = row_images.noise is not None and options.shared_vision and decoder.supports_shared_vision
    request = PreparedRequest(
        options=options,
        rule=rule,
        prompt=prompt,
        row_images=row_images,
        add_special_tokens=wants_special_tokens(decoder.tokenizer, prompt),
        shared_vision=shared,
        prompt_ids=torch.empty(0, dtype=torch.long),
        n_images=len(conversation.images),
        n_groups=len(set(image_groups)),
        max_new_tokens=0,
        sources=sources,
    )
    encoded = _processor_outputs(decoder, request, request.chunk)
    request.prompt_ids = encoded[0]["input_ids"][0]
    if request.prompt_length >= decoder.context_length:
        raise ContextLengthError(
            f"the prompt needs {request.prompt_length} tokens ({request.n_images} images) but the model's "
            f"context holds {decoder.context_length}"
        )
    budget = options.new_token_budget(request.prompt_length)
    if budget < 1:
        raise ContextLengthError(
            f"the prompt needs {request.prompt_length} tokens but max_length={options.max_length} leaves no "
            "room for an answer (set max_new_tokens instead)"
        )
    request.max_new_tokens = min(budget, decoder.context_length - request.prompt_length)
    return request


def _processor_outputs(decoder: FocusDecoder, request: PreparedRequest, chunk: int) -> list[dict[str, Any]]:
    """Processor outputs: the distinct images (shared vision), else every row's images in groups of ``chunk``."""
    key = 0 if request.shared_vision else chunk
    if key in request.encoded:
        return request.encoded[key]
    with decoder.processor_lock:
        return _run_processor(decoder, request, chunk, key)


def _run_processor(
    decoder: FocusDecoder, request: PreparedRequest, chunk: int, key: int
) -> list[dict[str, Any]]:
    flat = request.options.multi_image_anyres and decoder.family.flat_list_anyres
    try:
        if request.shared_vision:
            encoded = [
                distinct_images_inputs(
                    decoder.processor,
                    request.prompt,
                    request.row_images,
                    add_special_tokens=request.add_special_tokens,
                    flat_images=flat,
                )
            ]
        else:
            encoded = [
                encode_rows(
                    decoder.processor,
                    request.prompt,
                    rows,
                    add_special_tokens=request.add_special_tokens,
                    flat_images=flat,
                )
                for rows in chunks(request.row_images.rows, chunk)
            ]
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise PromptError(f"the processor could not encode this prompt and its images: {err}") from None
    request.encoded = {key: encoded}  # only the latest grouping is kept
    return encoded


def row_groups(decoder: FocusDecoder, request: PreparedRequest, chunk: int) -> list[RowGroup]:
    """The model work before decoding: vision features and the row groups (``chunk`` rows each)."""
    model, family = decoder.model, decoder.family
    encoded = _processor_outputs(decoder, request, chunk)
    if not request.shared_vision:
        return [RowGroup(model, family, inputs) for inputs in encoded]
    if request.encoding is None:
        request.encoding = encode_shared(model, family, decoder.tokenizer, encoded[0])
    encoding, masks = request.encoding, request.rule.row_masks
    share = request.options.share_prefix and can_share_prefix(model, family, encoding, masks)
    return [
        RowGroup(model, family, encoding.inputs(group), (encoding, group) if share else None)
        for group in chunks(masks, chunk)
    ]


def chunks(items: Sequence[Any], size: int) -> list[Any]:
    return [items[start : start + size] for start in range(0, len(items), size)]
