"""``ChatFocus``: a LangChain chat model that decodes with FOCUS on a local Hugging Face VLM.

This module holds the class: its fields, constructor checks and the LangChain surface (sync, stream, async,
tools, structured output, token counting). What one call does lives beside it: ``_options`` (fields and call
keywords through the core vocabulary), ``_calls`` (prepare a request, run the engine stream, parse tool
calls), ``_messages`` (LangChain messages and content blocks to engine messages), ``_responses`` (engine
output to ``AIMessage`` / chunks), ``_structured`` (grammar constraints), ``_tools``, ``_profile``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from focus_integrations.adapters import iterate_in_thread
from focus_integrations.errors import InvalidOptionError
from focus_integrations.images import RemoteImages, check_remote_permission
from focus_integrations.langchain._calls import acollect, as_chunk, collect, prepare_request, run_request
from focus_integrations.langchain._messages import FileResolver
from focus_integrations.langchain._options import (
    _IGNORED_KWARGS,
    _OPTION_FIELDS,
    check_raw_fields,
    loading_options,
)
from focus_integrations.langchain._profile import model_profile
from focus_integrations.langchain._responses import _Outcome, _Request, chat_result
from focus_integrations.langchain._structured import structured_output
from focus_integrations.langchain._tools import _normalise_tool_choice
from focus_integrations.shared import shared_decoder
from focus_integrations.vocabulary import constructor_error

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder

__all__ = ["ChatFocus"]


class ChatFocus(BaseChatModel):
    """FOCUS multi-image decoding (arXiv 2508.13744) on a local Hugging Face VLM, as a LangChain chat model.

    Each request with N images runs N+1 masked copies of the prompt in one batch (copy k keeps image k
    clean and replaces the others with noise, copy 0 is all noise) and decodes from
    ``sum_k z_k - alpha * N * z_0`` at every step, so the answer about one image is not contaminated by the
    others. Requests with one image, or none, decode plainly.

    Setup:
        ```bash
        pip install "focus-integrations[langchain]"
        ```

    Instantiate:
        ```python
        from focus_integrations.langchain import ChatFocus

        llm = ChatFocus(model="Qwen/Qwen2.5-VL-7B-Instruct", mode="focus", alpha=0.1, max_tokens=256)
        # or, with a decoder you already built: ChatFocus(decoder=FocusDecoder(model, processor))
        ```

    Invoke with images (base64, data: URIs, file:// URLs, local paths; http(s) only with
    ``allow_remote_images=True``):
        ```python
        from langchain_core.messages import HumanMessage

        llm.invoke([HumanMessage(content=[
            {"type": "text", "text": "Which is cheaper?"},
            {"type": "image", "base64": b64, "mime_type": "image/png"},
            {"type": "image", "url": "file:///catalog/b.png"},
        ])])
        ```

    Per-call overrides: ``llm.invoke(messages, alpha=0.3, mode="vanilla", seed=1)``.

    Tools: ``llm.bind_tools([...], tool_choice=None | "any" | "<name>")`` renders the tools through the
    model's chat template (or, for templates without tool support, a system instruction) and parses
    ``<tool_call>`` JSON (or bare JSON calls) into ``AIMessage.tool_calls``.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    model: str | None = Field(default_factory=from_env("FOCUS_MODEL", default=None), alias="model_name")
    """Hub id or local folder of the checkpoint (default: ``$FOCUS_MODEL``). Optional with ``decoder``."""
    decoder: Any = Field(default=None, exclude=True, repr=False)
    """An existing ``FocusDecoder`` to use instead of loading ``model``."""

    # Loading options (transformers' from_pretrained arguments; see focus_integrations.loading.LoadingOptions).
    device: Any = None
    """Where to move the loaded model (``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device``)."""
    dtype: Any = Field(default=None, alias="torch_dtype")
    """``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"`` or a ``torch.dtype``; default: the checkpoint's."""
    device_map: str | dict[str, Any] | None = None
    """accelerate placement while loading (``"auto"``); excludes ``device``."""
    attn_implementation: str | None = None
    """``"sdpa"``, ``"eager"``, ``"flash_attention_2"``, ..."""
    quantization_config: Any = None
    """e.g. ``BitsAndBytesConfig(load_in_4bit=True)`` (needs bitsandbytes and a GPU)."""
    low_cpu_mem_usage: bool | None = None
    revision: str | None = None
    cache_dir: str | None = None
    token: str | bool | None = Field(default=None, repr=False, exclude=True)
    trust_remote_code: bool = False
    local_files_only: bool | None = None
    model_kwargs: dict[str, Any] | None = None
    """Extra keyword arguments for the model's ``from_pretrained``."""
    processor_kwargs: dict[str, Any] | None = None
    """Extra keyword arguments for the processor's ``from_pretrained``."""

    # Decoding options. None means "not set": the checkpoint's generation_config.json / focus_config.json
    # (or the engine default) decides.
    mode: Literal["focus", "vanilla", "vcd"] | None = None
    """``"focus"`` (default), ``"vanilla"`` (plain multi-image decoding) or ``"vcd"`` (baseline)."""
    alpha: float | str | dict[int, float] | None = None
    """Contrast weight; default 0.1 for focus, 1.0 for vcd. Also a table ``{N: alpha}`` (per number of images
    or image groups) or ``"n-calibrated"`` (alpha = (N-1)/N for each request's N)."""
    noise: str | None = None
    """Noise mode for masked images; default ``"imagenet+uniform"`` (the reference code's)."""
    noise_scale: float | None = None
    noise_severity: int | None = None
    """Strength 1-5 of the shot / impulse / speckle noise modes (default 3, the reference's evaluation)."""
    fresh_noise: bool | None = None
    """True: new noise for every row (reference code); default: one draw per slot shared by all rows."""
    plausibility_beta: float | None = None
    seed: int | None = None
    """Makes the noise and sampling reproducible."""
    row_chunk_size: int | None = None
    """Most rows per forward pass (memory bound for many images)."""
    num_frames: int | None = None
    """Frames sampled from each video block (default 8); with ``fps``, the most frames."""
    fps: float | None = None
    """Sample video blocks at this many frames per second instead of ``num_frames`` uniform frames."""
    video_masking: Literal["frame", "video"] | None = None
    """``"frame"`` (default, the reference): every frame its own FOCUS slot; ``"video"``: one group per video."""

    max_tokens: int | None = Field(default=None, alias="max_new_tokens")
    """Most tokens to generate (default: the checkpoint's generation config, else 256)."""
    temperature: float | None = None
    """0: greedy decoding; > 0: sampling at this temperature (it acts on the combined logits); None: the
    checkpoint's generation config decides (greedy if it says nothing)."""
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop strings (not included in the output). A ``stop`` passed to a call replaces these."""
    logprobs: bool | None = None
    """Return each answer token's log-probability in ``response_metadata["logprobs"]`` (OpenAI's shape). They
    are log-probabilities under the COMBINED rule (for FOCUS ``sum_k z_k - alpha N z_0``), before repetition
    penalty, temperature and top-k/p: see docs/langchain.md."""
    top_logprobs: int | None = None
    """Also the k (0-20) likeliest tokens of each step (implies ``logprobs``)."""
    chat_template_kwargs: dict[str, Any] | None = None
    """Keyword arguments for the chat template (``{"add_vision_id": True}``, ``{"enable_thinking": False}``);
    a call's ``chat_template_kwargs`` are merged on top."""
    generate_kwargs: dict[str, Any] | None = None
    """Any other decoding option of the engine's vocabulary (``min_new_tokens``, ``no_repeat_ngram_size``,
    ``generation_config``, ...), below the named fields."""
    timeout: float | None = None
    """Seconds one call may take; checked between tokens, raises ``TimeoutError``."""
    streaming: bool = False
    """Whether ``invoke`` streams internally (fires ``on_llm_new_token`` callbacks)."""

    allow_remote_images: bool | RemoteImages = False
    """Fetch ``http(s)`` image URLs: True (with ``remote_image_max_bytes`` / ``remote_image_timeout``) or a
    ``RemoteImages(timeout=, max_bytes=)`` with its own limits, as the engine takes. Off by default: a URL in a
    prompt must not make the server fetch it."""
    remote_image_max_bytes: int = 20 * 1024 * 1024
    remote_image_timeout: float = 10.0
    file_resolver: FileResolver | None = Field(default=None, exclude=True, repr=False)
    """Resolves image blocks that carry a ``file_id`` (returns a path, bytes, data URI or PIL image)."""
    generic_json_tool_calls: bool = True
    """Also accept a bare JSON object ``{"name": ..., "arguments": ...}`` as a tool call (for models
    without ``<tool_call>`` markup)."""

    _decoder: Any = PrivateAttr(default=None)
    _decoder_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    # Checkpoints named by per-call `model=` overrides, held so they are not reloaded on every call.
    _override_decoders: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(self, **kwargs: Any) -> None:
        # One error contract for both adapters' constructors: InvalidOptionError, never pydantic's own type.
        try:
            super().__init__(**kwargs)
        except ValidationError as err:
            known = [
                *type(self).model_fields,
                "model_name",
                "max_new_tokens",
                "stop_sequences",
                "torch_dtype",
            ]
            raise constructor_error("ChatFocus", err.errors(), known) from None

    @field_validator("allow_remote_images", mode="before")
    @classmethod
    def _remote_permission(cls, value: Any) -> Any:
        return check_remote_permission(value)  # "yes" or 1 must not switch fetching on

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # "END" is one stop string, not E, N, D

    @model_validator(mode="before")
    @classmethod
    def _check_raw_options(cls, values: Any) -> Any:
        # `api_key` / `max_retries` / `base_url` are passed by code written for hosted models (and by
        # langchain-tests); a local model has no use for them. Anything else unknown is an error.
        if isinstance(values, dict):
            values = {k: v for k, v in values.items() if k not in _IGNORED_KWARGS}
            # The engine's one validation on the values as given, before pydantic coerces "0.5" or True.
            check_raw_fields(values)
        return values

    @model_validator(mode="after")
    def _check_source(self) -> ChatFocus:
        if self.decoder is None and not self.model:
            raise InvalidOptionError("ChatFocus needs model=<hub id or folder> or decoder=<FocusDecoder>")
        if self.decoder is not None:
            from focus_integrations.decoder import FocusDecoder

            if not isinstance(self.decoder, FocusDecoder):
                raise InvalidOptionError(f"decoder must be a FocusDecoder, got {type(self.decoder).__name__}")
            if not self.model:
                self.model = self.decoder.model_name
        if self.decoder is not None and loading_options(self).set_values():
            raise InvalidOptionError(
                "loading options only apply when loading a checkpoint (model=...), not to a given decoder"
            )
        return self

    # ------------------------------------------------------------------------------------ LangChain surface

    @property
    def _llm_type(self) -> str:
        return "focus"

    # Not lc-serializable: langchain-core's loader only rebuilds classes on its own allowlist, so a dumped
    # ChatFocus could not be loaded back (and a live `decoder` / `file_resolver` never serialises).

    def _resolve_model_profile(self) -> ModelProfile | None:
        return model_profile(self)

    @property
    def model_name(self) -> str:
        return self.model or ""

    @property
    def _identifying_params(self) -> dict[str, Any]:
        params = {"model_name": self.model_name}
        for name in _OPTION_FIELDS:
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        return params

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="focus",
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
        )
        # Tracing metadata only, read before the call's options are validated: a value of the wrong type is
        # left out here (the call then raises its InvalidOptionError), never a TypeError from this method.
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
            params["ls_temperature"] = float(temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            params["ls_max_tokens"] = max_tokens
        stops = stop if stop is not None else self.stop
        if isinstance(stops, str):
            params["ls_stop"] = [stops]
        elif isinstance(stops, (list, tuple)) and stops:
            params["ls_stop"] = list(stops)
        return params

    @property
    def focus_decoder(self) -> FocusDecoder:
        """The engine behind this model (loaded on first use, shared with other instances)."""
        return self._decoder_for(None)

    def _decoder_for(self, model_override: str | None) -> FocusDecoder:
        if model_override and model_override != self.model:
            with self._decoder_lock:
                decoder = self._override_decoders.get(model_override)
                if decoder is None:
                    decoder = shared_decoder(model_override, **loading_options(self).set_values())
                    self._override_decoders[model_override] = decoder
                return decoder
        if self.decoder is not None:
            return self.decoder
        with self._decoder_lock:
            if self._decoder is None:
                self._decoder = shared_decoder(str(self.model), **loading_options(self).set_values())
            return self._decoder

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` with the model's own tokenizer (no special tokens, no network)."""
        return list(self.focus_decoder.tokenizer(text, add_special_tokens=False)["input_ids"])

    def get_num_tokens(self, text: str) -> int:
        return len(self.get_token_ids(text))

    def get_num_tokens_from_messages(
        self,
        messages: list[BaseMessage],
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool] | None = None,
    ) -> int:
        """Prompt tokens of a chat as the model sees it: chat template, tools and image tokens included."""
        formatted = [convert_to_openai_tool(t) for t in tools] if tools else None
        # The same preparation as a call, so tool instructions and rewritten tool turns are counted too.
        request = self._prepare(messages, None, {"tools": formatted} if formatted else {})
        return request.decoder.count_tokens(
            request.messages,
            tools=request.tools,
            chat_template_kwargs=request.options.get("chat_template_kwargs"),
        )

    # ------------------------------------------------------------------------------------ tools / structure

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (rendered through the chat template).

        ``tool_choice``: ``None`` / ``"auto"`` (the model decides), ``"any"`` / ``"required"`` / ``True``
        (it must call one), a tool name or ``{"type": "function", "function": {"name": ...}}`` (it must call
        that one), ``"none"`` (tools are not shown to the model). "Must" is enforced by a grammar: the answer
        is one call, in the template's call syntax (``<tool_call>`` blocks for Qwen, a bare JSON call
        otherwise), to an offered tool, with arguments valid for its schema. ``strict=True`` closes the
        argument objects (no keys beyond the schema's), as OpenAI's strict function calling does.
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        names = [tool["function"]["name"] for tool in formatted]
        choice = _normalise_tool_choice(tool_choice, names)
        return super().bind(tools=formatted, tool_choice=choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Answers shaped by ``schema`` (pydantic class, TypedDict, JSON schema or OpenAI tool dict).

        ``method="function_calling"`` (default) binds the schema as the one tool the model must call;
        ``"json_schema"`` / ``"json_mode"`` ask for a bare JSON answer (with / without the schema). Every
        method decodes under a grammar constraint, so the answer always parses and validates; ``strict=True``
        closes objects that do not say ``additionalProperties`` (OpenAI's strict mode). An answer that
        ``max_tokens`` cut off raises ``IncompleteOutputError`` (with ``include_raw=True``: ``parsing_error``).
        A tokenizer that cannot spell JSON (the bundled default model's) raises ``UnsupportedTokenizerError``.
        """
        if kwargs:
            raise InvalidOptionError(f"unsupported arguments to with_structured_output: {sorted(kwargs)}")
        return structured_output(self, schema, include_raw=include_raw, method=method, strict=strict)

    # ------------------------------------------------------------------------------------ requests

    def _prepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> _Request:
        return prepare_request(self, messages, stop, kwargs)

    def _run(self, request: _Request, cancelled: threading.Event | None = None) -> Iterator[str | _Outcome]:
        return run_request(request, generic_json=self.generic_json_tool_calls, cancelled=cancelled)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._prepare(messages, stop, kwargs)
        text, outcome = collect(self._run(request))
        return chat_result(request, outcome, text)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # langchain-core fires on_llm_new_token for every chunk itself; doing it here would double them.
        request = self._prepare(messages, stop, kwargs)
        for item in self._run(request):
            yield as_chunk(request, item)

    # ------------------------------------------------------------------------------------ async

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = await asyncio.to_thread(self._prepare, messages, stop, kwargs)  # image loading: off-loop
        async for item in iterate_in_thread(lambda cancelled: self._run(request, cancelled)):
            yield as_chunk(request, item)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = await asyncio.to_thread(self._prepare, messages, stop, kwargs)
        text, outcome = await acollect(iterate_in_thread(lambda cancelled: self._run(request, cancelled)))
        return chat_result(request, outcome, text)
