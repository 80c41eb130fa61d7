"""``ChatFocus`` options: its fields and a call's keywords, mapped through the core vocabulary
(:mod:`focus_integrations.vocabulary`), so they mean what they mean in the engine and the other adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from focus_integrations.adapters import adapter_options
from focus_integrations.loading import LOADING_FIELDS, LoadingOptions
from focus_integrations.options import DecodingOptions
from focus_integrations.vocabulary import check_adapter_fields, check_timeout

if TYPE_CHECKING:
    from focus_integrations.langchain.chat_models import ChatFocus

# Decoding fields of ChatFocus (field name -> engine option name); a call may override each by either name.
_OPTION_FIELDS = {
    "mode": "mode",
    "alpha": "alpha",
    "noise": "noise",
    "noise_scale": "noise_scale",
    "noise_severity": "noise_severity",
    "fresh_noise": "fresh_noise",
    "plausibility_beta": "plausibility_beta",
    "seed": "seed",
    "max_tokens": "max_new_tokens",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "repetition_penalty": "repetition_penalty",
    "stop": "stop",
    "row_chunk_size": "row_chunk_size",
    "chat_template_kwargs": "chat_template_kwargs",
    "num_frames": "num_frames",
    "fps": "fps",
    "video_masking": "video_masking",
    "logprobs": "logprobs",
    "top_logprobs": "top_logprobs",
}
# Per-call kwargs ChatFocus handles itself (tools come from bind_tools); every other name is an engine option.
_CALL_KWARGS = {"model", "tools", "tool_choice", "response_format", "timeout"}
# Hosted-API knobs that mean nothing for a local model; accepted so ChatFocus drops into code written for one.
_IGNORED_KWARGS = {"stream", "parallel_tool_calls", "api_key", "base_url", "max_retries", "user"}


def field_layer(model: ChatFocus) -> dict[str, Any]:
    """The decoding options ChatFocus's named fields set (engine names; None = not set)."""
    return {option: getattr(model, field) for field, option in _OPTION_FIELDS.items()}


def call_layer(kwargs: dict[str, Any], stop: list[str] | None) -> dict[str, Any]:
    """A call's decoding options: its keywords minus ChatFocus's own, plus LangChain's ``stop``."""
    layer = {
        k: v
        for k, v in kwargs.items()
        if k not in _CALL_KWARGS and k not in _IGNORED_KWARGS and not k.startswith("ls_")
    }
    layer |= dict(layer.pop("generate_kwargs", None) or {})
    if stop is not None:
        layer["stop"] = stop
    return layer


def engine_options(model: ChatFocus, kwargs: dict[str, Any], stop: list[str] | None) -> dict[str, Any]:
    """Fields (``generate_kwargs`` below the named ones), then the call's keywords, as ONE layer of engine
    options (the rule FocusMultiModalLLM uses too); validated (InvalidOptionError)."""
    options = adapter_options(field_layer(model), model.generate_kwargs, call_layer(kwargs, stop))
    DecodingOptions.from_layers(options)  # raises InvalidOptionError before any work
    check_timeout(kwargs.get("timeout", model.timeout))
    return options


# Raw constructor names (fields and their aliases) that are decoding / loading options.
_DECODING_NAMES = {*_OPTION_FIELDS, "max_new_tokens", "stop_sequences"}
_LOADING_NAMES = {*LOADING_FIELDS, "torch_dtype"}


def check_raw_fields(values: dict[str, Any]) -> None:
    """The engine's validation on constructor arguments as given (before pydantic coerces them)."""
    check_adapter_fields(
        {k: v for k, v in values.items() if k in _DECODING_NAMES},
        values.get("generate_kwargs"),
        {k: v for k, v in values.items() if k in _LOADING_NAMES},
        values.get("timeout"),
    )


def loading_options(model: ChatFocus) -> LoadingOptions:
    """The transformers loading arguments set by ChatFocus fields, validated."""
    return LoadingOptions.from_kwargs(**{name: getattr(model, name) for name in LOADING_FIELDS})
