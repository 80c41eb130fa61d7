"""ONE option vocabulary for every entry point (engine, LangChain, LlamaIndex, CLI, server).

Each entry point hands the names its users write to :func:`decoding_layer`, which returns
:class:`~focus_integrations.options.DecodingOptions` field names, with the same rules everywhere:

- ``None`` means "not set" (the layer below decides), never "override with nothing";
- ``max_tokens`` / ``max_completion_tokens`` are ``max_new_tokens``; ``stop_sequences`` / ``stop_strings``
  are ``stop``; a single string is ONE stop string;
- ``temperature=0`` means greedy; a ``temperature > 0`` given without ``do_sample`` in the same layer means
  sampling (what hosted APIs and their frameworks mean by it);
- ``generation_config=`` (a ``transformers.GenerationConfig`` or a dict) expands to its set fields, below the
  names given beside it;
- ``generate()`` options that have no meaning for one answer chosen from the combined logits (beam search,
  several sequences, ...) are errors unless neutral; any other unknown name is an error that lists both
  vocabularies, decoding and loading.

The checkpoint's ``generation_config.json`` goes through :func:`generation_config_layer` (transformers'
meaning: ``do_sample`` decides, settings with no meaning here are reported as ignored, not raised).
:func:`split_options` separates loading arguments (``from_pretrained``) from decoding options.
No framework imports here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from focus_integrations.errors import InvalidOptionError
from focus_integrations.loading import LOADING_OPTIONS
from focus_integrations.options import FIELDS, merge_layers

# Other names for a DecodingOptions field (framework / API spelling -> engine field).
ALIASES: dict[str, str] = {
    "max_tokens": "max_new_tokens",  # OpenAI, LangChain
    "max_completion_tokens": "max_new_tokens",  # OpenAI chat completions (newer name)
    "stop_sequences": "stop",  # LangChain, Anthropic
    "stop_strings": "stop",  # transformers generate()
}

# generate() / OpenAI options with no meaning for FOCUS decoding, with the values that mean "off".
WITHOUT_MEANING: dict[str, tuple[Any, ...]] = {
    "num_beams": (1,),
    "num_beam_groups": (1,),
    "num_return_sequences": (1,),
    "n": (1,),
    "best_of": (1,),
    "penalty_alpha": (0, 0.0),
    "diversity_penalty": (0, 0.0),
    "guidance_scale": (1, 1.0),
    "top_h": (),
    "constraints": (),
    "force_words_ids": (),
    "sequence_bias": (),
    "forced_bos_token_id": (),
    "forced_eos_token_id": (),
    "begin_suppress_tokens": (),
    "exponential_decay_length_penalty": (),
    "watermarking_config": (),
    "assistant_model": (),
    "prompt_lookup_num_tokens": (),
    "streamer": (),
    "logits_processor": (),
    "stopping_criteria": (),
    "prefix_allowed_tokens_fn": (),
    "output_scores": (False,),
    "output_logits": (False,),
    "return_dict_in_generate": (False,),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logit_bias": ({},),
}
_WHY = (
    "FOCUS decodes ONE answer, one token per step chosen from the combined logits of its rows "
    "(no beams, no several sequences, no extra logits hooks)"
)

# GenerationConfig fields that do not change which tokens one greedy or sampled answer gets (or that
# only matter with beams); a checkpoint may carry them, they are not reported.
_NEUTRAL_GENERATION_FIELDS = frozenset(
    {
        "bos_token_id",
        "decoder_start_token_id",
        "use_cache",
        "cache_implementation",
        "cache_config",
        "transformers_version",
        "_from_model_config",
        "output_attentions",
        "output_hidden_states",
        "length_penalty",
        "early_stopping",
        "renormalize_logits",  # log-softmax at the end: the same argmax and the same sampling distribution
        "low_memory",
        "max_time",
        "is_assistant",
        "num_assistant_tokens",
        "num_assistant_tokens_schedule",
        "assistant_confidence_threshold",
        "assistant_lookbehind",
        "target_lookbehind",
        "encoder_repetition_penalty",
        "encoder_no_repeat_ngram_size",
        "remove_invalid_values",
        "token_healing",
        "dola_layers",
        "compile_config",
        "disable_compile",
        "generation_kwargs",
        "trust_remote_code",
        "prefill_chunk_size",
    }
)


def known_names() -> str:
    """Both vocabularies, for error messages."""
    decoding = sorted({*FIELDS, *ALIASES, "generation_config"})
    return f"decoding options: {', '.join(decoding)}; loading options: {', '.join(LOADING_OPTIONS)}"


def decoding_layer(options: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
    """Map one layer of user-facing names to DecodingOptions fields (only the ones set). See the module doc."""
    values: dict[str, Any] = {}
    config = options.get("generation_config")
    if config is not None:
        values, _ = generation_config_layer(config, strict=True)
    given: dict[str, Any] = {}
    unknown: list[str] = []
    for raw_name, value in options.items():
        if raw_name == "generation_config" or value is None:
            continue
        name = ALIASES.get(raw_name, raw_name)
        if raw_name in WITHOUT_MEANING:
            _check_neutral(raw_name, value)
            continue
        if name not in FIELDS:
            if raw_name in LOADING_OPTIONS:
                raise InvalidOptionError(
                    f"{raw_name} is a loading option: it applies when the model is loaded "
                    "(from_pretrained or the adapter's constructor), not to a decode"
                )
            unknown.append(raw_name)
            continue
        if name in given and given[name][1] != value:
            raise InvalidOptionError(
                f"{given[name][0]}={given[name][1]!r} and {raw_name}={value!r} set the same option differently"
            )
        given[name] = (raw_name, value)
    if unknown:
        suffix = f" {where}" if where else ""
        raise InvalidOptionError(f"unknown option(s){suffix}: {', '.join(sorted(unknown))}; {known_names()}")
    explicit = {name: value for name, (_, value) in given.items()}
    _temperature_rule(explicit)
    return values | explicit


def _temperature_rule(layer: dict[str, Any]) -> None:
    """``temperature=0`` is greedy; ``temperature > 0`` without ``do_sample`` beside it samples."""
    if "temperature" not in layer:
        return
    temperature = layer["temperature"]
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(float(temperature))
        or temperature < 0
    ):
        raise InvalidOptionError(f"temperature must be a finite number >= 0 (0: greedy), got {temperature!r}")
    if temperature == 0:
        del layer["temperature"]
        layer["do_sample"] = False
    elif "do_sample" not in layer:
        layer["do_sample"] = True


def _check_neutral(name: str, value: Any) -> None:
    for neutral in WITHOUT_MEANING[name]:
        if (
            isinstance(neutral, bool) == isinstance(value, bool)
            and type(value) is not str
            and value == neutral
        ):
            return
    raise InvalidOptionError(f"{name}={value!r} has no meaning here: {_WHY}")


def generation_config_layer(config: Any, *, strict: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ``GenerationConfig`` (or its dict) -> (DecodingOptions fields it sets, settings ignored here).

    transformers' meaning: ``do_sample`` alone decides sampling (a temperature without it stays unused, and
    ``temperature=0`` is greedy). ``strict`` (a config passed to a call): settings with no meaning here
    raise instead of being reported as ignored.
    """
    if isinstance(config, Mapping):
        items = dict(config)
    elif hasattr(config, "to_dict"):
        items = config.to_dict()
    else:
        raise InvalidOptionError(
            f"generation_config must be a transformers.GenerationConfig or a dict, got {type(config).__name__}"
        )
    values: dict[str, Any] = {}
    ignored: dict[str, Any] = {}
    for raw_name, value in items.items():
        if value is None or raw_name in _NEUTRAL_GENERATION_FIELDS:
            continue
        name = ALIASES.get(raw_name, raw_name)
        if raw_name in WITHOUT_MEANING:
            try:
                _check_neutral(raw_name, value)
            except InvalidOptionError:
                if strict:
                    raise
                ignored[raw_name] = value
            continue
        if name in FIELDS and name not in _ENGINE_ONLY:
            values[name] = value
        elif strict:
            raise InvalidOptionError(
                f"generation_config field {raw_name!r} is not supported; {known_names()}"
            )
        else:
            ignored[raw_name] = value
    if values.get("temperature") == 0:
        del values["temperature"]
        values["do_sample"] = False
    if isinstance(values.get("eos_token_id"), list) and not values["eos_token_id"]:
        del values["eos_token_id"]
    return values, ignored


# DecodingOptions fields a GenerationConfig cannot carry (they are FOCUS settings, not generate() ones).
_ENGINE_ONLY = frozenset(
    {
        "mode",
        "alpha",
        "noise",
        "noise_scale",
        "noise_severity",
        "fresh_noise",
        "shared_vision",
        "share_prefix",
        "multi_image_anyres",
        "focus_one_image",
        "plausibility_beta",
        "row_chunk_size",
        "chat_template_kwargs",
        "seed",
    }
)


def split_options(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``from_pretrained``-style keywords -> (loading options, decoding options as a mapped layer)."""
    loading = {k: v for k, v in kwargs.items() if k in LOADING_OPTIONS}
    decoding = decoding_layer({k: v for k, v in kwargs.items() if k not in LOADING_OPTIONS})
    return loading, decoding


def check_timeout(value: Any, name: str = "timeout") -> float | None:
    """A per-call time limit in seconds: None, or a finite number > 0."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or value <= 0
    ):
        raise InvalidOptionError(f"{name} must be a number of seconds > 0 or None, got {value!r}")
    return float(value)


def combine_layers(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Several parts of ONE layer of user-facing names (lowest first, e.g. ``generate_kwargs`` below named
    fields or flags) as one layer of engine names, each mapped on its own (``temperature=0`` in a higher part
    is greedy even when a lower one samples). The parts are one user's settings together: a mode set in one
    part takes the alpha of another (no mode scoping between them; ``adapters.adapter_options`` scopes an
    adapter's fields against its calls)."""
    return merge_layers([("call", decoding_layer(layer)) for layer in layers], scoped=False)


def check_adapter_fields(
    decoding: Mapping[str, Any], generate_kwargs: Any, loading: Mapping[str, Any], timeout: Any = None
) -> None:
    """An adapter's constructor arguments as given (before pydantic coerces "0.5" or True): the decoding
    fields over ``generate_kwargs``, the loading fields and the timeout, each through its one check."""
    from focus_integrations.loading import LoadingOptions
    from focus_integrations.options import DecodingOptions

    if generate_kwargs is not None and not isinstance(generate_kwargs, Mapping):
        raise InvalidOptionError(
            f"generate_kwargs must be a dict of decoding options, got {generate_kwargs!r}"
        )
    DecodingOptions.from_layers(combine_layers(generate_kwargs or {}, decoding))
    LoadingOptions.from_kwargs(**loading)
    check_timeout(timeout)


def constructor_error(class_name: str, errors: list[dict[str, Any]], known: list[str]) -> InvalidOptionError:
    """The ONE error both adapters' constructors raise for bad arguments (from pydantic's ``errors()``):
    ``InvalidOptionError`` naming unknown arguments (with the known ones) and each wrong value."""
    unknown = sorted(str(e["loc"][0]) for e in errors if e.get("type") == "extra_forbidden" and e.get("loc"))
    problems = []
    for error in errors:
        if error.get("type") == "extra_forbidden":
            continue
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidOptionError):  # the engine's own check, raised inside a validator
            problems.append(str(cause))
        else:
            where = ".".join(map(str, error.get("loc", ()))) or "argument"
            problems.append(f"{where}: {error.get('msg', '')} (got {error.get('input')!r:.80})")
    parts = []
    if unknown:
        parts.append(
            f"unknown {class_name} argument(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    if problems:
        parts.append(f"invalid {class_name} argument(s): {'; '.join(problems)}")
    return InvalidOptionError(". ".join(parts) or f"invalid {class_name} arguments")
