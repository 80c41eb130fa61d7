"""``FocusMultiModalLLM``: a LlamaIndex LLM that answers over images with FOCUS decoding.

It subclasses :class:`FunctionCallingLLM` (an ``LLM``; not ``CustomLLM``, whose ``chat`` flattens messages to
text and drops the images, and whose async methods block the event loop). It is a chat model: core engines since 0.14
(``RetrieverQueryEngine.from_args(..., multimodal=True)``, chat engines, agents) call ``chat`` /
``stream_chat`` with ``ImageBlock``s. The older ``MultiModalLLM`` calling convention
``complete(prompt, image_documents=[...])`` is accepted too, without inheriting ``MultiModalLLM`` (its
incompatible ``complete`` signature and ``__init_subclass__`` callback wrapping would fight ``LLM``'s).

Async methods run the engine in a worker thread and pass deltas back through an ``asyncio.Queue``
(:func:`focus_integrations.adapters.iterate_in_thread`, shared with ``ChatFocus``): the event loop never waits
on the model, and cancelling the awaiting task stops the decode at the next token.

This module holds the class and its endpoints; beside it: ``_options`` (fields -> engine options, constructor
checks; ``ENGINE_OPTION_FIELDS`` is derived here from the fields), ``tools`` (tool requests, ``ToolCallBlock``s and the
``FunctionCallingLLM`` methods), ``_responses`` (engine output -> LlamaIndex responses), ``structured``
(``structured_predict`` under a grammar), ``conversion`` (LlamaIndex messages and image documents -> engine
messages).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM

from focus_integrations.adapters import iterate_in_thread
from focus_integrations.errors import InvalidOptionError, RequestTimeoutError
from focus_integrations.images import RemoteImages, check_remote_permission
from focus_integrations.llama_index._options import (
    OptionsMixin,
    check_constructor_arguments,
    engine_option_fields,
)
from focus_integrations.llama_index._responses import MessageBuilder, _Call, _ResponseMixin
from focus_integrations.llama_index.conversion import (
    ImageDocumentLike,
    chat_messages_to_engine,
    prompt_to_engine,
)
from focus_integrations.llama_index.structured import StructuredPredictMixin, constrain_tool_call
from focus_integrations.llama_index.tools import ToolCallingMixin, tool_request
from focus_integrations.loading import LOADING_FIELDS
from focus_integrations.options import DEFAULT_MAX_NEW_TOKENS
from focus_integrations.vocabulary import check_timeout, constructor_error

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.outputs import GenerationOutput


__all__ = ["ENGINE_OPTION_FIELDS", "FocusMultiModalLLM"]


class FocusMultiModalLLM(
    OptionsMixin, ToolCallingMixin, _ResponseMixin, StructuredPredictMixin, FunctionCallingLLM
):
    """A local Hugging Face vision-language model decoded with FOCUS, as a LlamaIndex chat LLM.

    Build it from a checkpoint (hub id or local folder) or from an existing
    :class:`~focus_integrations.FocusDecoder` (share one decoder between adapters: it holds the model)::

        llm = FocusMultiModalLLM("Qwen/Qwen2.5-VL-3B-Instruct", alpha=0.1, max_new_tokens=128)
        llm = FocusMultiModalLLM(decoder=dec, mode="vanilla")

    Per-call keyword arguments to any chat/complete method override the decoding fields for that call
    (``llm.chat(messages, max_new_tokens=16, seed=0)``); unknown names raise ``InvalidOptionError``.
    Responses carry ``raw = {"usage": {...}, "finish_reason", "stop_sequence", "settings", "model"}``
    (``settings["n_images"]`` is the number of images the engine decoded over) and the token counts in
    ``additional_kwargs`` (``prompt_tokens`` / ``completion_tokens`` / ``total_tokens``). Streams yield the
    cumulative text with each ``delta`` and end with one response whose ``delta`` is ``""`` and whose ``raw``
    holds the final usage.

    Tools: with a checkpoint whose chat template renders tools (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, ...), it is a
    ``FunctionCallingLLM``: ``chat(..., tools=[...])`` / ``chat_with_tools`` / ``FunctionAgent`` get the model's
    ``<tool_call>`` answers back as ``ToolCallBlock``s (markup never reaches the streamed text).
    """

    # Unknown constructor arguments are errors (LlamaIndex's components ignore them by default).
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str | None = Field(default=None, description="Hub id or local folder of the checkpoint.")
    # Loading options: transformers' from_pretrained arguments (focus_integrations.loading.LoadingOptions).
    device: Any = Field(default=None, description="Device to move the model to (cpu, cuda, cuda:1, ...).")
    dtype: Any = Field(
        default=None, description="torch dtype (float32, bfloat16, auto, ...); torch_dtype is accepted too."
    )
    device_map: str | dict[str, Any] | None = Field(
        default=None, description="accelerate placement while loading, e.g. 'auto'."
    )
    attn_implementation: str | None = Field(default=None, description="sdpa, eager, flash_attention_2, ...")
    quantization_config: Any = Field(default=None, description="e.g. BitsAndBytesConfig(load_in_4bit=True).")
    low_cpu_mem_usage: bool | None = Field(default=None, description="Passed to from_pretrained.")
    revision: str | None = Field(default=None, description="Hub branch, tag or commit.")
    cache_dir: str | None = Field(default=None, description="Hugging Face cache folder.")
    token: str | bool | None = Field(default=None, exclude=True, repr=False, description="Hub token.")
    local_files_only: bool | None = Field(
        default=None, description="Never reach the Hub (None: follow HF_HUB_OFFLINE)."
    )
    trust_remote_code: bool = Field(default=False, description="Allow checkpoint code to run.")
    model_kwargs: dict[str, Any] | None = Field(
        default=None, description="Extra keyword arguments for the model's from_pretrained."
    )
    processor_kwargs: dict[str, Any] | None = Field(
        default=None, description="Extra keyword arguments for the processor's from_pretrained."
    )

    # Decoding fields (docs/engine.md). None means "not set": the decoder's defaults, the checkpoint's
    # focus_config.json and generation_config.json, then the library defaults decide, in that order.
    mode: str | None = Field(default=None, description="Logits rule: focus (default), vanilla or vcd.")
    alpha: float | str | dict[int, float] | None = Field(
        default=None,
        description="Contrast weight (default 0.1 focus, 1.0 vcd); a table {N: alpha} per number of images "
        "or groups; or 'n-calibrated' (alpha = (N-1)/N for each request).",
    )
    noise: str | None = Field(default=None, description="Noise mode name (default: the mode's).")
    noise_scale: float | None = Field(default=None, description="Noise strength in [0, 1].")
    noise_severity: int | None = Field(
        default=None, description="Strength 1-5 of shot / impulse / speckle noise (default 3)."
    )
    fresh_noise: bool | None = Field(
        default=None, description="New noise per row (reference code) instead of one draw per slot."
    )
    shared_vision: bool | None = Field(
        default=None, description="Encode each distinct image once and share the features across rows."
    )
    share_prefix: bool | None = Field(
        default=None,
        description="Rows continue from the all-noise row's KV cache up to their first clean image.",
    )
    plausibility_beta: float | None = Field(default=None, description="VCD plausibility cutoff.")
    max_new_tokens: int | None = Field(
        default=None,
        description="Tokens to generate at most (max_tokens per call too; default: generation config, else 256).",
    )
    do_sample: bool | None = Field(
        default=None, description="Sample from the combined logits (default greedy)."
    )
    temperature: float | None = Field(
        default=None, description="0: greedy; > 0: sampling at this temperature, on the combined logits."
    )
    top_k: int | None = Field(default=None, description="Top-k sampling cutoff.")
    top_p: float | None = Field(default=None, description="Nucleus sampling cutoff.")
    repetition_penalty: float | None = Field(default=None, description="Penalty on the combined logits.")
    stop: str | list[str] | None = Field(
        default=None, description="Stop strings (not included in the text); one string is one stop string."
    )
    seed: int | None = Field(default=None, description="Seed for noise and sampling.")
    row_chunk_size: int | None = Field(default=None, description="Max rows per forward pass.")
    chat_template_kwargs: dict[str, Any] | None = Field(
        default=None, description="Keyword arguments for the chat template, e.g. {'add_vision_id': True}."
    )
    generate_kwargs: dict[str, Any] | None = Field(
        default=None,
        description="Any other decoding option of the engine (min_new_tokens, generation_config, ...).",
    )
    response_format: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Grammar every answer follows (json_schema, json_object, regex, choice; docs/engine.md). "
            "structured_predict and required tool calls set their own."
        ),
    )
    num_frames: int | None = Field(default=None, description="Frames sampled per video (default 8).")
    fps: float | None = Field(default=None, description="Sample videos at this rate (num_frames: the most).")
    video_masking: str | None = Field(
        default=None, description="frame (default, the reference): a FOCUS slot per frame; video: one group."
    )
    logprobs: bool | None = Field(
        default=None,
        description="Return each token's log-probability under the combined rule (response.logprobs).",
    )
    top_logprobs: int | None = Field(
        default=None, description="Also the k (0-20) likeliest tokens of each step (implies logprobs)."
    )

    allow_remote_images: bool | RemoteImages = Field(
        default=False,
        description="Fetch http(s) image URLs: True or RemoteImages(timeout=, max_bytes=), as the engine takes "
        "(refused with RemoteImageError otherwise).",
    )
    require_images: bool = Field(
        default=False,
        description=(
            "Raise NoImageError on a request without images. Off by default: LlamaIndex engines make text-only "
            "calls of their own (condensing a question, agent steps), which then decode plainly (one row)."
        ),
    )
    context_window: int | None = Field(
        default=None, description="Override the context window read from the model config."
    )
    timeout: float | None = Field(
        default=None,
        description="Seconds one call may take (a call's timeout= overrides it); checked between tokens, "
        "raises RequestTimeoutError. The same contract as ChatFocus(timeout=...).",
    )

    _decoder: FocusDecoder = PrivateAttr()

    @field_validator("allow_remote_images", mode="before")
    @classmethod
    def _remote_permission(cls, value: Any) -> Any:
        return check_remote_permission(value)  # "yes" or 1 must not switch fetching on, as in ChatFocus

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # "END" is one stop string, as in ChatFocus

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        decoder: FocusDecoder | None = None,
        **kwargs: Any,
    ) -> None:
        if (model is None) == (decoder is None):
            raise InvalidOptionError("pass exactly one of model=<hub id or folder> or decoder=<FocusDecoder>")
        # The engine's one validation on the values as given, then pydantic's; both end as InvalidOptionError
        # (the same contract as ChatFocus).
        check_constructor_arguments(type(self), kwargs)
        try:
            super().__init__(model=os.fspath(model) if model is not None else None, **kwargs)
        except ValidationError as err:
            known = [*type(self).model_fields, "torch_dtype"]
            raise constructor_error("FocusMultiModalLLM", err.errors(), known) from None
        loading = sorted(
            set(LOADING_FIELDS) & {k for k in self.model_fields_set if getattr(self, k) is not None}
        )
        if decoder is not None and loading:
            raise InvalidOptionError(
                f"{', '.join(loading)} only apply when loading a checkpoint (model=...), not to a given decoder"
            )
        if decoder is None:
            from focus_integrations.shared import shared_decoder

            # One decoder per checkpoint and loading options in the process, shared with ChatFocus too.
            decoder = shared_decoder(self.model, **self.loading_options().set_values())
        self._decoder = decoder
        self.effective_options()  # bad combinations with the decoder's layers fail now, not at the first query

    @classmethod
    def class_name(cls) -> str:
        # "multi" in the name keeps MultiModalVectorStoreIndex.as_query_engine from warning.
        return "focus_multi_modal_llm"

    @property
    def decoder(self) -> FocusDecoder:
        """The engine this LLM decodes with (share it with other adapters)."""
        return self._decoder

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window or _context_window(self._decoder),
            num_output=self.effective_options().max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            is_chat_model=True,
            is_function_calling_model=self.supports_tools(),
            model_name=self._decoder.model_name,
            system_role=MessageRole.SYSTEM,
        )

    # ----- conversion -------------------------------------------------------------------------

    def _chat_builder(self, messages: Sequence[ChatMessage]) -> MessageBuilder:
        return lambda: chat_messages_to_engine(messages, allow_remote_images=self.allow_remote_images)

    def _prompt_builder(
        self, prompt: str, formatted: Any, image_documents: Sequence[ImageDocumentLike] | None
    ) -> MessageBuilder:
        # MultiModalLLM's signature is complete(prompt, image_documents): accept the list positionally too.
        if not isinstance(formatted, bool):
            if image_documents is not None:
                raise InvalidOptionError("image_documents given twice (positionally and by keyword)")
            image_documents = formatted
        return lambda: prompt_to_engine(
            prompt,
            image_documents,
            system_prompt=self.system_prompt,
            allow_remote_images=self.allow_remote_images,
        )

    # ----- engine calls -----------------------------------------------------------------------------------

    def _call(self, build: MessageBuilder, kwargs: dict[str, Any], *, chat: bool) -> _Call:
        """Validate one request's arguments up front: bad options and tools raise before any decoding."""
        tools = None
        kwargs = dict(kwargs)
        timeout = check_timeout(kwargs.pop("timeout", self.timeout))
        if chat:
            tools = tool_request(
                kwargs.pop("tools", None),
                kwargs.pop("tool_choice", None),
                bool(kwargs.pop("tool_required", False)),
            )
            if tools is not None and not self.supports_tools():
                raise InvalidOptionError(
                    f"the chat template of {self._decoder.model_name} does not render tools: use a ReActAgent "
                    "(it needs no native tool calling) or a checkpoint whose template supports tools"
                )
            if tools is not None and tools.required:
                tools = constrain_tool_call(self._decoder, tools, kwargs)
        deadline = time.monotonic() + timeout if timeout else None
        return _Call(build, self._resolve_options(kwargs), tools, timeout, deadline)

    def _generate(self, call: _Call) -> GenerationOutput:
        final = None
        with contextlib.closing(self._stream(call)) as items:
            for _, output in items:
                final = output or final
        assert final is not None  # the stream always ends with the engine's output
        return final

    def _stream(self, call: _Call) -> Iterator[tuple[str, GenerationOutput | None]]:
        """Yield ``(delta, None)`` per piece of text, then ``("", output)`` once the engine is done."""
        # Images are loaded before the first yield, so a bad image raises at the first next().
        schemas = call.tools.schemas if call.tools is not None else None
        stream = self._decoder.stream(
            messages=call.build(),
            tools=schemas,
            require_images=self.require_images,
            assistant_prefix=call.answer_prefix,
            **call.options,
        )
        try:
            for delta in stream:
                if call.deadline is not None and time.monotonic() > call.deadline:
                    raise RequestTimeoutError(f"FocusMultiModalLLM call exceeded timeout={call.timeout}s")
                if delta:
                    yield delta, None
            yield "", stream.output
        finally:
            # Closing an unfinished engine stream releases the decoder lock when the consumer stops early.
            stream.close()

    def _astream(self, call: _Call) -> AsyncIterator[tuple[str, GenerationOutput | None]]:
        """Async ``_stream``: the engine runs in a worker thread; deltas cross over through a queue."""
        return iterate_in_thread(lambda cancelled: self._stream(call), name="FocusMultiModalLLM-decode")

    # ----- sync endpoints ---------------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._call(self._chat_builder(messages), kwargs, chat=True)
        return self._final_chat_response(call, self._generate(call))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        call = self._call(self._chat_builder(messages), kwargs, chat=True)

        def gen() -> ChatResponseGen:
            push = self._chat_responses(call)
            with contextlib.closing(self._stream(call)) as items:
                for delta, output in items:
                    response = push(delta, output)
                    if response is not None:
                        yield response

        return gen()

    @llm_completion_callback()
    def complete(
        self,
        prompt: str,
        formatted: bool = False,
        *,
        image_documents: Sequence[ImageDocumentLike] | None = None,
        **kwargs: Any,
    ) -> CompletionResponse:
        call = self._call(self._prompt_builder(prompt, formatted, image_documents), kwargs, chat=False)
        output = self._generate(call)
        return self._completion_response(output.text, None, output)

    @llm_completion_callback()
    def stream_complete(
        self,
        prompt: str,
        formatted: bool = False,
        *,
        image_documents: Sequence[ImageDocumentLike] | None = None,
        **kwargs: Any,
    ) -> CompletionResponseGen:
        call = self._call(self._prompt_builder(prompt, formatted, image_documents), kwargs, chat=False)

        def gen() -> CompletionResponseGen:
            text = ""
            with contextlib.closing(self._stream(call)) as items:
                for delta, output in items:
                    text += delta
                    yield self._completion_response(text, delta, output)

        return gen()

    # ----- async endpoints --------------------------------------------------------------------------------

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        # Through the stream, so that cancelling the awaiting task stops the decode at the next token.
        call = self._call(self._chat_builder(messages), kwargs, chat=True)
        final = None
        async for _, output in self._astream(call):
            final = output or final
        assert final is not None  # the stream always ends with the engine's output
        return self._final_chat_response(call, final)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        call = self._call(self._chat_builder(messages), kwargs, chat=True)

        async def gen() -> ChatResponseAsyncGen:
            push = self._chat_responses(call)
            async for delta, output in self._astream(call):
                response = push(delta, output)
                if response is not None:
                    yield response

        return gen()

    @llm_completion_callback()
    async def acomplete(
        self,
        prompt: str,
        formatted: bool = False,
        *,
        image_documents: Sequence[ImageDocumentLike] | None = None,
        **kwargs: Any,
    ) -> CompletionResponse:
        call = self._call(self._prompt_builder(prompt, formatted, image_documents), kwargs, chat=False)
        final = None
        async for _, output in self._astream(call):
            final = output or final
        assert final is not None
        return self._completion_response(final.text, None, final)

    @llm_completion_callback()
    async def astream_complete(
        self,
        prompt: str,
        formatted: bool = False,
        *,
        image_documents: Sequence[ImageDocumentLike] | None = None,
        **kwargs: Any,
    ) -> CompletionResponseAsyncGen:
        call = self._call(self._prompt_builder(prompt, formatted, image_documents), kwargs, chat=False)

        async def gen() -> CompletionResponseAsyncGen:
            text = ""
            async for delta, output in self._astream(call):
                text += delta
                yield self._completion_response(text, delta, output)

        return gen()


# Engine options mirrored as fields (the fields named as a DecodingOptions field); per-call kwargs override them.
ENGINE_OPTION_FIELDS: tuple[str, ...] = engine_option_fields(FocusMultiModalLLM)


def _context_window(decoder: FocusDecoder) -> int:
    """The decoder's context length (text model positions); LlamaIndex's default when the config has none."""
    length = getattr(decoder, "context_length", None)
    # The engine reports 2**30 for configs without a position limit: not a number to budget prompts with.
    if isinstance(length, int) and 0 < length < (1 << 30):
        return length
    return DEFAULT_CONTEXT_WINDOW
