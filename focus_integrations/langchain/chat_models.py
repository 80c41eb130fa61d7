"""``ChatFocus``: a LangChain chat model that decodes with FOCUS on a local Hugging Face VLM."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call as make_invalid_tool_call
from langchain_core.messages.tool import tool_call as make_tool_call
from langchain_core.messages.tool import tool_call_chunk as make_tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from focus_integrations.errors import InvalidOptionError
from focus_integrations.langchain._messages import FileResolver, ImagePolicy, to_engine_messages
from focus_integrations.tool_calls import QWEN_OPEN, ParsedToolCalls, ToolCallStreamParser, forced_call_prefix

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder, TextStream
    from focus_integrations.outputs import GenerationOutput

__all__ = ["ChatFocus"]

# Engine options a call may override (ChatFocus field name -> engine option name).
_OPTION_FIELDS = {
    "mode": "mode",
    "alpha": "alpha",
    "noise": "noise",
    "noise_scale": "noise_scale",
    "fresh_noise": "fresh_noise",
    "plausibility_beta": "plausibility_beta",
    "seed": "seed",
    "max_tokens": "max_new_tokens",
    "top_k": "top_k",
    "top_p": "top_p",
    "repetition_penalty": "repetition_penalty",
    "row_chunk_size": "row_chunk_size",
}
# Per-call kwargs ChatFocus understands besides the options (tools come from bind_tools).
_CALL_KWARGS = {
    "model",
    "tools",
    "tool_choice",
    "response_format",
    "temperature",
    "max_new_tokens",
    "timeout",
}
# Hosted-API knobs that mean nothing for a local model; accepted so ChatFocus drops into code written for one.
_IGNORED_KWARGS = {"stream", "parallel_tool_calls", "n", "api_key", "base_url", "max_retries", "user"}

# One decoder per checkpoint and placement, shared by every ChatFocus that names it (weights load once).
_SHARED_DECODERS: weakref.WeakValueDictionary[tuple[Any, ...], FocusDecoder] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()
# Whether a decoder's chat template renders the `tools` argument (probed once per decoder).
_RENDERS_TOOLS: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "focus_template_probe_7f3a",
        "description": "probe",
        "parameters": {"type": "object", "properties": {}},
    },
}


def _shared_decoder(name_or_path: str, device: Any, dtype: Any, trust_remote_code: bool) -> FocusDecoder:
    from focus_integrations.decoder import FocusDecoder

    key = (name_or_path, device, dtype, trust_remote_code)
    with _SHARED_LOCK:  # two threads asking for the same checkpoint must not load it twice
        decoder = _SHARED_DECODERS.get(key)
        if decoder is None:
            decoder = FocusDecoder.from_pretrained(
                name_or_path, device=device, dtype=dtype, trust_remote_code=trust_remote_code
            )
            _SHARED_DECODERS[key] = decoder
        return decoder


@dataclass
class _Request:
    """One call, prepared outside the decoder lock: images loaded, options validated, tools resolved."""

    decoder: FocusDecoder
    model_name: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_names: list[str]
    options: dict[str, Any]
    deadline: float | None
    timeout: float | None
    answer_prefix: str = ""  # forced start of the answer (enforces tool_choice)


@dataclass
class _Outcome:
    output: GenerationOutput
    parsed: ParsedToolCalls | None


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
    device: Any = None
    """Where to load the model (``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device``); default: the
    loader's choice."""
    dtype: Any = None
    """``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"`` or a ``torch.dtype``; default: the loader's."""
    trust_remote_code: bool = False

    mode: Literal["focus", "vanilla", "vcd"] = "focus"
    """``"focus"`` (default), ``"vanilla"`` (plain multi-image decoding) or ``"vcd"`` (baseline)."""
    alpha: float | None = None
    """Contrast weight; default 0.1 for focus, 1.0 for vcd."""
    noise: str | None = None
    """Noise mode for masked images; default ``"imagenet+uniform"`` (the reference code's)."""
    noise_scale: float | None = None
    fresh_noise: bool | None = None
    """True: new noise for every row (reference code); default: one draw per slot shared by all rows."""
    plausibility_beta: float | None = None
    seed: int | None = None
    """Makes the noise and sampling reproducible."""
    row_chunk_size: int | None = None
    """Most rows per forward pass (memory bound for many images)."""

    max_tokens: int | None = Field(default=None, alias="max_new_tokens")
    """Most tokens to generate (engine default 256)."""
    temperature: float | None = None
    """``None`` or 0: greedy decoding; > 0: sampling at this temperature (it acts on the combined logits)."""
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop strings (not included in the output). A ``stop`` passed to a call replaces these."""
    timeout: float | None = None
    """Seconds one call may take; checked between tokens, raises ``TimeoutError``."""
    streaming: bool = False
    """Whether ``invoke`` streams internally (fires ``on_llm_new_token`` callbacks)."""

    allow_remote_images: bool = False
    """Fetch ``http(s)`` image URLs. Off by default: a URL in a prompt must not make the server fetch it."""
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

    @model_validator(mode="before")
    @classmethod
    def _drop_hosted_only_params(cls, values: Any) -> Any:
        # `api_key` / `max_retries` / `base_url` are passed by code written for hosted models (and by
        # langchain-tests); a local model has no use for them. Anything else unknown is an error.
        if isinstance(values, dict):
            values = {k: v for k, v in values.items() if k not in _IGNORED_KWARGS}
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
        # Validate the option fields now, not at the first call.
        self._engine_options({}, None)
        return self

    # ------------------------------------------------------------------------------------ LangChain surface

    @property
    def _llm_type(self) -> str:
        return "focus"

    # Not lc-serializable: langchain-core's loader only rebuilds classes on its own allowlist, so a dumped
    # ChatFocus could not be loaded back (and a live `decoder` / `file_resolver` never serialises).

    def _resolve_model_profile(self) -> ModelProfile | None:
        # What the adapter supports, known without loading the model (the context size would need it).
        profile = ModelProfile(
            open_weights=True,
            text_inputs=True,
            image_inputs=True,
            image_url_inputs=self.allow_remote_images,
            image_tool_message=True,
            pdf_inputs=False,
            audio_inputs=False,
            video_inputs=False,
            pdf_tool_message=False,
            text_outputs=True,
            image_outputs=False,
            tool_calling=True,
            tool_choice=True,
            tool_call_streaming=False,  # calls arrive whole, on the last chunk
        )
        if self.max_tokens is not None:
            profile["max_output_tokens"] = self.max_tokens
        return profile

    @property
    def model_name(self) -> str:
        return self.model or ""

    @property
    def _identifying_params(self) -> dict[str, Any]:
        params = {"model_name": self.model_name}
        for name in (*_OPTION_FIELDS, "temperature", "stop"):
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
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = float(temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = int(max_tokens)
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or [])
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
                    decoder = _shared_decoder(model_override, self.device, self.dtype, self.trust_remote_code)
                    self._override_decoders[model_override] = decoder
                return decoder
        if self.decoder is not None:
            return self.decoder
        with self._decoder_lock:
            if self._decoder is None:
                self._decoder = _shared_decoder(
                    str(self.model), self.device, self.dtype, self.trust_remote_code
                )
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
        return request.decoder.count_tokens(request.messages, tools=request.tools)

    # ------------------------------------------------------------------------------------ tools / structure

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (rendered through the chat template).

        ``tool_choice``: ``None`` / ``"auto"`` (the model decides), ``"any"`` / ``"required"`` / ``True``
        (it must call one), a tool name or ``{"type": "function", "function": {"name": ...}}`` (it must call
        that one), ``"none"`` (tools are not shown to the model). "Must" is enforced: the answer is forced to
        start with the tool call (up to the arguments for a named tool, up to the name for "any").
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
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
        ``"json_schema"`` / ``"json_mode"`` ask for a bare JSON answer (with / without the schema) and parse
        the text. ``strict`` is accepted for API compatibility; a local model is not grammar-constrained.
        """
        if kwargs:
            raise InvalidOptionError(f"unsupported arguments to with_structured_output: {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        if method == "function_calling":
            tool_name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools(
                [schema],
                tool_choice=tool_name,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )
            parser: Runnable = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            response_format: dict[str, Any] = {"type": "json_object"}
            if method == "json_schema":
                response_format = {"type": "json_schema", "schema": convert_to_json_schema(schema)}
            llm = self.bind(
                response_format=response_format,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
        else:
            raise InvalidOptionError(
                f"unknown method {method!r}; use 'function_calling', 'json_schema' or 'json_mode'"
            )
        if not include_raw:
            return llm | parser
        with_parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | with_parsed.with_fallbacks([fallback], exception_key="parsing_error")

    # ------------------------------------------------------------------------------------ requests

    def _image_policy(self) -> ImagePolicy:
        return ImagePolicy(
            allow_remote=self.allow_remote_images,
            max_bytes=self.remote_image_max_bytes,
            timeout=self.remote_image_timeout,
            file_resolver=self.file_resolver,
        )

    def _engine_options(self, overrides: dict[str, Any], stop: list[str] | None) -> dict[str, Any]:
        """Fields + per-call overrides -> validated engine options (InvalidOptionError on bad values)."""
        from focus_integrations.options import DecodingOptions

        options: dict[str, Any] = {}
        for field_name, option in _OPTION_FIELDS.items():
            value = overrides.get(field_name, getattr(self, field_name))
            if field_name == "max_tokens" and overrides.get("max_new_tokens") is not None:
                value = overrides["max_new_tokens"]
            if value is not None:
                options[option] = value
        temperature = overrides.get("temperature", self.temperature)
        if temperature is not None:
            if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature < 0:
                raise InvalidOptionError(f"temperature must be a number >= 0, got {temperature!r}")
            if temperature > 0:  # 0 means greedy, as with hosted APIs
                options["do_sample"] = True
                options["temperature"] = float(temperature)
        stops = stop if stop is not None else self.stop
        if stops:
            options["stop"] = tuple(stops)
        DecodingOptions.resolve(**options)  # raises InvalidOptionError before any work
        return options

    def _prepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> _Request:
        unknown = set(kwargs) - set(_OPTION_FIELDS) - _CALL_KWARGS - _IGNORED_KWARGS
        unknown = {k for k in unknown if not k.startswith("ls_")}
        if unknown:
            known = sorted(set(_OPTION_FIELDS) | _CALL_KWARGS)
            raise InvalidOptionError(f"unknown ChatFocus argument(s) {sorted(unknown)}; known: {known}")
        options = self._engine_options(kwargs, stop)
        model_override = kwargs.get("model")
        decoder = self._decoder_for(model_override)
        model_name = model_override or self.model_name
        engine_messages = to_engine_messages(
            messages, self._image_policy(), tool_turns_as_text=not _renders_tools(decoder)
        )

        tools = kwargs.get("tools") or None
        tool_choice = kwargs.get("tool_choice")
        if tools and tool_choice == "none":
            tools = None
        tool_names = [t["function"]["name"] for t in tools] if tools else []
        instructions: list[str] = []
        if tools:
            if not _renders_tools(decoder):
                instructions.append(_tool_instruction(tools))
            if tool_choice == "any":
                instructions.append("You must answer with a call to one of the tools.")
            elif tool_choice:
                instructions.append(f"You must answer with a call to the tool `{tool_choice}`.")
        response_format = kwargs.get("response_format")
        if response_format:
            instructions.append(_json_instruction(response_format))
        if instructions:
            engine_messages = _with_system_instructions(engine_messages, instructions)
        template_tools = tools if tools and _renders_tools(decoder) else None

        answer_prefix = _forced_tool_call_prefix(decoder, tool_choice) if tools and tool_choice else ""
        timeout = kwargs.get("timeout", self.timeout)
        return _Request(
            decoder=decoder,
            model_name=model_name,
            messages=engine_messages,
            tools=template_tools,
            tool_names=tool_names,
            options=options,
            deadline=time.monotonic() + timeout if timeout else None,
            timeout=timeout,
            answer_prefix=answer_prefix,
        )

    def _open_stream(self, request: _Request) -> TextStream:
        # A chat model answers text-only turns too (agent steps, follow-ups): they decode plainly.
        return request.decoder.stream(
            messages=request.messages,
            tools=request.tools,
            require_images=False,
            assistant_prefix=request.answer_prefix or None,
            **request.options,
        )

    def _run(self, request: _Request, cancelled: threading.Event | None = None) -> Iterator[str | _Outcome]:
        """Shown text deltas, then one ``_Outcome``. Tool-call markup is held back and parsed."""
        parser = (
            ToolCallStreamParser(tool_names=request.tool_names, generic_json=self.generic_json_tool_calls)
            if request.tool_names
            else None
        )
        stream = self._open_stream(request)
        if (
            request.answer_prefix
        ):  # the forced start is part of the answer (held back by the parser if markup)
            shown = parser.feed(request.answer_prefix) if parser else request.answer_prefix
            if shown:
                yield shown
        try:
            for delta in stream:
                if cancelled is not None and cancelled.is_set():
                    return  # the consumer went away; closing the stream frees the decoder
                if request.deadline is not None and time.monotonic() > request.deadline:
                    raise TimeoutError(f"ChatFocus call exceeded timeout={request.timeout}s")
                shown = parser.feed(delta) if parser else delta
                if shown:
                    yield shown
        finally:
            stream.close()  # releases the decoder lock even when the consumer stops early
        parsed = None
        if parser is not None:
            tail, parsed = parser.finish()
            if tail:
                yield tail
        yield _Outcome(stream.output, parsed)

    def _metadata(self, request: _Request, output: GenerationOutput) -> tuple[UsageMetadata, dict[str, Any]]:
        usage = UsageMetadata(
            input_tokens=output.usage.input_tokens,
            output_tokens=output.usage.output_tokens,
            total_tokens=output.usage.total_tokens,
        )
        settings = dict(output.settings)
        response = {
            "model_name": request.model_name,
            "finish_reason": output.finish_reason,
            "stop_sequence": output.stop_sequence,
            "focus": settings,
        }
        return usage, response

    @staticmethod
    def _tool_fields(parsed: ParsedToolCalls | None) -> dict[str, Any]:
        if parsed is None:
            return {}
        return {
            "tool_calls": [
                make_tool_call(name=c["name"], args=c["arguments"], id=c["id"]) for c in parsed.tool_calls
            ],
            "invalid_tool_calls": [
                make_invalid_tool_call(name=c["name"], args=c["arguments"], id=c["id"], error=c["error"])
                for c in parsed.invalid
            ],
        }

    def _final_chunk(self, request: _Request, outcome: _Outcome, tail: str) -> ChatGenerationChunk:
        usage, response = self._metadata(request, outcome.output)
        chunks = []
        if outcome.parsed is not None:
            for index, call in enumerate(outcome.parsed.tool_calls):
                chunks.append(
                    make_tool_call_chunk(
                        name=call["name"], args=json.dumps(call["arguments"]), id=call["id"], index=index
                    )
                )
            offset = len(chunks)
            for index, bad in enumerate(outcome.parsed.invalid):
                # As a JSON string literal, so chunk merging (which parses args leniently) keeps it invalid.
                chunks.append(
                    make_tool_call_chunk(
                        name=bad["name"],
                        args=json.dumps(bad["arguments"]),
                        id=bad["id"],
                        index=offset + index,
                    )
                )
        message = AIMessageChunk(
            content=tail,
            tool_call_chunks=chunks,
            usage_metadata=usage,
            response_metadata=response,
            chunk_position="last",
        )
        return ChatGenerationChunk(
            message=message, generation_info={"finish_reason": outcome.output.finish_reason}
        )

    # ------------------------------------------------------------------------------------ sync

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._prepare(messages, stop, kwargs)
        text: list[str] = []
        outcome: _Outcome | None = None
        for item in self._run(request):
            if isinstance(item, _Outcome):
                outcome = item
            else:
                text.append(item)
        assert outcome is not None
        return self._result(request, outcome, "".join(text))

    def _result(self, request: _Request, outcome: _Outcome, text: str) -> ChatResult:
        usage, response = self._metadata(request, outcome.output)
        message = AIMessage(
            content=text,
            usage_metadata=usage,
            response_metadata=response,
            **self._tool_fields(outcome.parsed),
        )
        return ChatResult(
            generations=[
                ChatGeneration(message=message, generation_info={"finish_reason": response["finish_reason"]})
            ],
            llm_output={"model_name": request.model_name},
        )

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
            if isinstance(item, _Outcome):
                yield self._final_chunk(request, item, "")
            else:
                yield ChatGenerationChunk(message=AIMessageChunk(content=item))

    # ------------------------------------------------------------------------------------ async

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = await asyncio.to_thread(self._prepare, messages, stop, kwargs)  # image loading: off-loop
        async for item in self._arun(request):
            if isinstance(item, _Outcome):
                yield self._final_chunk(request, item, "")
            else:
                yield ChatGenerationChunk(message=AIMessageChunk(content=item))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = await asyncio.to_thread(self._prepare, messages, stop, kwargs)
        text: list[str] = []
        outcome: _Outcome | None = None
        async for item in self._arun(request):
            if isinstance(item, _Outcome):
                outcome = item
            else:
                text.append(item)
        assert outcome is not None
        return self._result(request, outcome, "".join(text))

    async def _arun(self, request: _Request) -> AsyncIterator[str | _Outcome]:
        """``_run`` in a worker thread, its items bridged through an asyncio queue: the loop never blocks.

        If the consumer stops (cancellation, ``aclose``), the worker is told to stop at the next token and
        closes the engine stream, which frees the decoder for other calls.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()

        def put(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: nobody is listening any more
                cancelled.set()

        def work() -> None:
            items = self._run(request, cancelled)
            try:
                for item in items:
                    put("item", item)
                    if cancelled.is_set():
                        break
            except BaseException as exc:  # re-raised on the loop side
                put("error", exc)
            else:
                put("end", None)
            finally:
                items.close()  # closes the engine stream now, not at garbage collection

        worker = threading.Thread(target=work, name="ChatFocus-decode", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = await queue.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            cancelled.set()


# ---------------------------------------------------------------------------------------------- helpers


def _normalise_tool_choice(choice: Any, names: list[str]) -> str | None:
    """None (model decides), "none", "any", or one tool name."""
    if choice is None or choice is False or choice == "auto":
        return None
    if choice is True or choice in ("any", "required"):
        return "any"
    if choice == "none":
        return "none"
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if not isinstance(name, str):
            raise InvalidOptionError(f"tool_choice dict without a function name: {choice!r}")
        choice = name
    if isinstance(choice, str):
        if choice not in names:
            raise InvalidOptionError(f"tool_choice {choice!r} is not one of the bound tools {names}")
        return choice
    raise InvalidOptionError(
        f"tool_choice must be None, 'auto', 'any', 'none' or a tool name, got {choice!r}"
    )


def _renders_tools(decoder: FocusDecoder) -> bool:
    """Does the chat template show the `tools` argument to the model? (Probe once per decoder.)"""
    known = _RENDERS_TOOLS.get(decoder)
    if known is None:
        try:
            rendered = decoder.render_prompt([{"role": "user", "content": "hi"}], tools=[_PROBE_TOOL])
            known = _PROBE_TOOL["function"]["name"] in rendered
        except Exception:  # a template that chokes on tools does not support them
            known = False
        _RENDERS_TOOLS[decoder] = known
    return known


def _forced_tool_call_prefix(decoder: FocusDecoder, tool_choice: str) -> str:
    """The start of a tool call the answer must begin with: ``tool_choice`` is enforced, not only asked for."""
    template = getattr(decoder.processor, "chat_template", None) or ""
    return forced_call_prefix(tool_choice, markup=_renders_tools(decoder) and QWEN_OPEN in template)


def _tool_instruction(tools: list[dict[str, Any]]) -> str:
    """For templates without tool support: describe the tools and the JSON call format in the system turn."""
    specs = "\n".join(json.dumps(tool["function"]) for tool in tools)
    return (
        "You can call these tools:\n"
        f"{specs}\n"
        'To call a tool, answer with only a JSON object {"name": <tool name>, "arguments": <object>} '
        "(or a list of them) and nothing else. Otherwise answer normally."
    )


def _json_instruction(response_format: dict[str, Any]) -> str:
    """``{"type": "json_schema", "schema": ...}`` (ours) or OpenAI's ``{"json_schema": {"schema": ...}}``."""
    schema = response_format.get("schema")
    if schema is None and isinstance(response_format.get("json_schema"), dict):
        schema = response_format["json_schema"].get("schema")
    if response_format.get("type") == "json_schema" and schema:
        return (
            "Answer with only a JSON object that matches this JSON schema, and nothing else:\n"
            + json.dumps(schema)
        )
    return "Answer with only a valid JSON object, and nothing else."


def _with_system_instructions(
    messages: list[dict[str, Any]], instructions: list[str]
) -> list[dict[str, Any]]:
    text = "\n\n".join(instructions)
    if messages and messages[0]["role"] == "system" and isinstance(messages[0]["content"], str):
        first = dict(messages[0])
        first["content"] = f"{first['content']}\n\n{text}" if first["content"] else text
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]
