"""Validated decoding options: one frozen dataclass, resolved from layers of settings.

Precedence (highest first): the call > the decoder's defaults > the checkpoint's ``focus_config.json`` >
its ``generation_config.json`` > the library defaults (transformers' own generation defaults where the option
is a ``generate`` option, the per-mode FOCUS / VCD defaults otherwise). ``None`` means "not set" at every
layer: it never overrides a lower layer. The mode-specific options (``alpha``, ``noise``, ``noise_scale``,
``plausibility_beta``) of a lower layer belong to the mode in effect there (FOCUS unless that layer or one
below sets another): a call asking ``mode="vcd"`` gets VCD's own defaults, not a checkpoint's FOCUS alpha
table; the call's own values apply to whatever mode it asks (:func:`scope_to_mode`). Every value is checked
here, once, for every entry point: finite numbers, real booleans, integers in the ranges numpy and torch
accept. Framework names (``max_tokens``, ``temperature=0``, ...) are mapped to these fields by
:mod:`focus_integrations.vocabulary`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from focus_integrations.constraints import ResponseFormat
from focus_integrations.errors import InvalidOptionError
from focus_integrations.noise import DEFAULT_NOISE, DEFAULT_SEVERITY, SEVERITIES, check_noise_mode

MAX_TOP_LOGPROBS = 20  # as OpenAI's API
Mode = Literal["focus", "vanilla", "vcd"]
MODES: tuple[str, ...] = ("focus", "vanilla", "vcd")

# ``alpha="n-calibrated"``: FOCUS with alpha = (N-1)/N for each request's N (see logits.calibrated_focus_combine).
N_CALIBRATED = "n-calibrated"
AlphaTable = tuple[tuple[int, float], ...]  # ((N, alpha), ...) sorted by N: alpha per number of images/groups
VIDEO_MASKING: tuple[str, ...] = ("frame", "video")
DEFAULT_NUM_FRAMES = 8

# Per-mode defaults where the methods differ: FOCUS (README example of the reference code) and VCD (its paper).
_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "focus": {"alpha": 0.1, "noise": DEFAULT_NOISE, "noise_scale": 1.0, "plausibility_beta": None},
    "vanilla": {"alpha": 0.0, "noise": DEFAULT_NOISE, "noise_scale": 1.0, "plausibility_beta": None},
    "vcd": {"alpha": 1.0, "noise": "imagenet+diffusion", "noise_scale": 0.5, "plausibility_beta": 0.1},
}

# The options whose meaning (and default) depends on the mode. A lower layer's value of one of them belongs to
# the mode in effect at that layer; see scope_to_mode.
MODE_SPECIFIC: tuple[str, ...] = tuple(_MODE_DEFAULTS["focus"])

# Without any setting and without max_length, an answer stops after this many tokens (transformers' own
# default is max_length=20 in total, prompt included, which a multi-image prompt alone exceeds).
DEFAULT_MAX_NEW_TOKENS = 256

# Largest seed numpy's default_rng and torch.manual_seed both accept.
MAX_SEED = 2**64 - 1

Layer = Mapping[str, Any] | tuple[str, Mapping[str, Any]]


@dataclass(frozen=True)
class DecodingOptions:
    """Everything that decides what a decode does; build it with :meth:`from_layers` or :meth:`resolve`.

    ``alpha`` is a number, a table ``{N: alpha}`` (alpha per number of images, or of image groups, N; a
    request whose N is not in the table takes the nearest N's, ties to the smaller; JSON keys may be strings),
    or ``"n-calibrated"``: alpha = (N-1)/N for each request, the rule ``z_0 + sum_k (z_k - z_0)``
    (docs/engine.md derives it; FOCUS only).

    Video content (``{"type": "video"}`` items, ``videos=``) is sampled to ``num_frames`` frames (default 8), or
    at ``fps`` frames per second with ``num_frames`` as the most; ``video_masking="frame"`` (the reference)
    makes every frame its own FOCUS slot, ``"video"`` one group per video.

    Sampling and length controls are transformers' ``generate`` options with its defaults, built from its own
    logits processors and applied to the COMBINED logits (one token per step for all rows). With FOCUS the
    combination is a sum over N rows, so logits grow about N times before temperature: the effective
    temperature is roughly ``temperature / N`` (greedy decoding is unaffected).
    """

    mode: Mode = "focus"
    alpha: float | str | AlphaTable | None = None
    noise: str | None = None
    noise_scale: float | None = None
    noise_severity: int = DEFAULT_SEVERITY
    fresh_noise: bool = False
    shared_vision: bool = True
    share_prefix: bool = True
    # Process every image of a multi-image prompt as the processor processes a lone image (LLaVA-OneVision:
    # anyres tiles for each, as ``processor(images=[a, b], text=prompt)`` with a FLAT list does) instead of the
    # processor's multi-image path (one base-resolution view each). No effect on families that process every
    # image the same way either way (families.FamilySpec.flat_list_anyres).
    multi_image_anyres: bool = False
    # FOCUS on a request with ONE image (or group) too: rows [noise] and [clean], z_1 - alpha * z_0, as the
    # reference runners decode whenever they inject noise (MIRB, Mantis, MuirBench, MMLongBench). Default: plain
    # decoding there, as the runners' un-noised one-image queries (Winoground's and VisMin's text queries).
    focus_one_image: bool = False
    plausibility_beta: float | None = None
    max_new_tokens: int | None = DEFAULT_MAX_NEW_TOKENS
    max_length: int | None = None
    min_new_tokens: int = 0
    min_length: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    min_p: float | None = None
    typical_p: float = 1.0
    epsilon_cutoff: float = 0.0
    eta_cutoff: float = 0.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    bad_words_ids: tuple[tuple[int, ...], ...] | None = None
    suppress_tokens: tuple[int, ...] | None = None
    eos_token_id: tuple[int, ...] | None = None
    pad_token_id: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    row_chunk_size: int | None = None
    chat_template_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_frames: int | None = None
    fps: float | None = None
    video_masking: str | None = None
    # What the answer must look like (JSON schema, JSON object, regex, choice, tool call): see constraints.py.
    response_format: ResponseFormat | None = None
    # Report each generated token's log-probability (GenerationOutput.logprobs); top_logprobs (0-20) adds the
    # k likeliest tokens of each step and implies logprobs. They observe the decode, they never change it.
    logprobs: bool = False
    top_logprobs: int | None = None

    @classmethod
    def from_layers(cls, *layers: Layer) -> DecodingOptions:
        """Merge ``layers`` (lowest precedence first; each a mapping or ``(name, mapping)``), fill defaults,
        validate. ``None`` values are "not set"; ``chat_template_kwargs`` dicts merge key by key."""
        values = merge_layers(layers)
        mode = values.get("mode", "focus")
        if not isinstance(mode, str) or mode not in MODES:
            raise InvalidOptionError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        for key, default in _MODE_DEFAULTS[mode].items():
            values.setdefault(key, default)
        if "max_new_tokens" not in values and values.get("max_length") is not None:
            values["max_new_tokens"] = None  # max_length alone bounds the answer, as in generate()
        normalised = {name: _CHECKS[name](name, value) for name, value in values.items()}
        if "alpha" in normalised:
            normalised["alpha"] = normalize_alpha(normalised["alpha"], mode)
        return cls(**normalised)

    @classmethod
    def resolve(cls, base: DecodingOptions | None = None, **overrides: Any) -> DecodingOptions:
        """``base`` (or the defaults) with ``overrides`` on top (``None`` = not set), validated."""
        lower = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)} if base is not None else {}
        return cls.from_layers(("base", lower), ("call", overrides))

    def new_token_budget(self, prompt_length: int) -> int:
        """Tokens the answer may have: ``max_new_tokens``, else ``max_length`` minus the prompt (generate's rule)."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        return int(self.max_length or 0) - prompt_length

    def as_settings(self) -> dict[str, Any]:
        settings = dataclasses.asdict(self)
        for key, value in settings.items():
            if isinstance(value, tuple):
                settings[key] = [list(v) if isinstance(v, tuple) else v for v in value]
        settings["response_format"] = (
            self.response_format.to_dict() if self.response_format is not None else None
        )
        if isinstance(self.alpha, tuple):
            settings["alpha"] = dict(self.alpha)
        return settings

    def alpha_for(self, n: int) -> float:
        """The contrast weight for a request with ``n`` images (groups): the number, the table's entry for
        the nearest N (ties: the smaller), or (N-1)/N for ``"n-calibrated"``."""
        return alpha_for(self.alpha, n)


def normalize_alpha(value: Any, mode: str) -> float | str | AlphaTable:
    """Validate an ``alpha`` value; tables (a mapping or pairs, keys may be strings) become sorted pairs."""
    if value == N_CALIBRATED:
        if mode == "vcd":
            raise InvalidOptionError(f"alpha={N_CALIBRATED!r} is a FOCUS rule; VCD needs a number or a table")
        return N_CALIBRATED
    if isinstance(value, str):
        raise InvalidOptionError(
            f"alpha must be a finite number >= 0, a {{N: alpha}} table or {N_CALIBRATED!r}, got {value!r}"
        )
    if isinstance(value, dict) or (isinstance(value, (list, tuple)) and value):
        pairs = value.items() if isinstance(value, dict) else value
        table: dict[int, float] = {}
        for pair in pairs:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise InvalidOptionError(f"alpha table entries must be (N, alpha) pairs, got {pair!r}")
            key, alpha = pair
            try:
                n = int(key)
            except (TypeError, ValueError):
                raise InvalidOptionError(f"alpha table keys must be numbers of images, got {key!r}") from None
            if isinstance(key, bool) or str(n) != str(key).strip() or n < 1:
                raise InvalidOptionError(f"alpha table keys must be integers >= 1, got {key!r}")
            if not _is_number(alpha) or alpha < 0:
                raise InvalidOptionError(f"alpha for N={n} must be a finite number >= 0, got {alpha!r}")
            table[n] = float(alpha)
        if not table:  # an empty table gives no alpha for any N
            raise InvalidOptionError("an alpha table needs at least one {N: alpha} entry, got an empty one")
        return tuple(sorted(table.items()))
    if not _is_number(value) or value < 0:
        raise InvalidOptionError(
            f"alpha must be a finite number >= 0, a {{N: alpha}} table or {N_CALIBRATED!r}, got {value!r}"
        )
    return float(value)


def parse_alpha(text: str) -> float | str:
    """A command-line alpha: a number, or ``n-calibrated``."""
    if text.strip().lower() == N_CALIBRATED:
        return N_CALIBRATED
    try:
        return float(text)
    except ValueError:
        raise InvalidOptionError(f"alpha must be a number or {N_CALIBRATED!r}, got {text!r}") from None


def alpha_for(alpha: float | str | AlphaTable | None, n: int) -> float:
    """See :meth:`DecodingOptions.alpha_for`."""
    if alpha == N_CALIBRATED:
        return (n - 1) / n if n > 0 else 0.0
    if isinstance(alpha, tuple):
        return min(alpha, key=lambda pair: (abs(pair[0] - n), pair[0]))[1]
    return float(alpha or 0.0)


def _is_number(value: Any) -> bool:
    """A real, finite number (not a boolean)."""
    return not _is_bool(value) and isinstance(value, numbers.Real) and math.isfinite(float(value))


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(DecodingOptions))


def merge_names(layers: Sequence[Layer]) -> list[tuple[str, Mapping[str, Any]]]:
    """Each layer as ``(name, mapping)``; a bare mapping is the call."""
    return [layer if isinstance(layer, tuple) else ("call", layer) for layer in layers]


def scope_to_mode(layers: Sequence[Layer]) -> list[tuple[str, Mapping[str, Any]]]:
    """``layers`` (lowest first) without the mode-specific values that do not belong to the mode asked.

    The mode in effect at a layer is the one set by that layer or the nearest one below it (``"focus"`` when
    none does). A mode-specific value (:data:`MODE_SPECIFIC`: ``alpha``, ``noise``, ``noise_scale``,
    ``plausibility_beta``) of a lower layer configures THAT mode: it is dropped when a higher layer asks for
    another one, which then starts from its own defaults (a checkpoint's FOCUS alpha table never becomes a
    VCD alpha). The highest layer (the call) is kept whole: an explicit alpha applies to whatever mode it asks.
    """
    named = merge_names(layers)
    in_effect: list[Any] = []
    mode: Any = "focus"
    for _, mapping in named:
        mode = mapping.get("mode") if mapping.get("mode") is not None else mode
        in_effect.append(mode)
    scoped = [
        (name, {k: v for k, v in mapping.items() if k not in MODE_SPECIFIC or layer_mode == mode})
        for (name, mapping), layer_mode in zip(named[:-1], in_effect[:-1])
    ]
    return scoped + named[-1:]


def merge_layers(layers: Sequence[Layer], *, scoped: bool = True) -> dict[str, Any]:
    """The set values of ``layers`` merged, higher layers winning (mode-specific values scoped to their mode,
    see :func:`scope_to_mode`, unless ``scoped=False``: parts of ONE layer); unknown names raise."""
    values: dict[str, Any] = {}
    for name, mapping in merge_names(layers):
        unknown = sorted(k for k in mapping if k not in FIELDS)
        if unknown:
            raise InvalidOptionError(
                f"unknown decoding option(s) {', '.join(map(str, unknown))} (from {name}); known: "
                f"{', '.join(FIELDS)}"
            )
    for _, mapping in scope_to_mode(layers) if scoped else merge_names(layers):
        for key, value in mapping.items():
            if value is None:
                continue
            if key == "chat_template_kwargs":
                value = {**values.get(key, {}), **_template_kwargs(key, value)}
            values[key] = value
    return values


def layer_sources(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, str]:
    """Which layer set each option (the highest one whose value applies, see :func:`scope_to_mode`)."""
    sources: dict[str, str] = {}
    for name, mapping in scope_to_mode(layers):
        for key, value in mapping.items():
            if value is not None:
                sources[key] = name
    return sources


# ----------------------------------------------------------------------------------------------- checks


def _bad(name: str, expected: str, value: Any) -> InvalidOptionError:
    return InvalidOptionError(f"{name} must be {expected}, got {value!r}")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy.bool_ without importing numpy


def _integer(name: str, value: Any, low: int, high: int | None = None, expected: str = "") -> int:
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise _bad(name, expected or f"an integer >= {low}", value)
    number = int(value)
    if number < low or (high is not None and number > high):
        raise _bad(name, expected or f"an integer >= {low}", value)
    return number


def _real(name: str, value: Any, expected: str) -> float:
    if not _is_number(value):
        raise _bad(name, expected, value)
    return float(value)


def _in_range(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Any:
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    expected = f"a finite number in {left}{low:g}, {high:g}{right}"

    def check(name: str, value: Any) -> float:
        number = _real(name, value, expected)
        if number < low or number > high or (low_open and number == low) or (high_open and number == high):
            raise _bad(name, expected, value)
        return number

    return check


def _positive(name: str, value: Any) -> float:
    number = _real(name, value, "a finite number > 0")
    if number <= 0:
        raise _bad(name, "a finite number > 0", value)
    return number


def _non_negative(name: str, value: Any) -> float:
    number = _real(name, value, "a finite number >= 0")
    if number < 0:
        raise _bad(name, "a finite number >= 0", value)
    return number


def _boolean(name: str, value: Any) -> bool:
    if not _is_bool(value):
        raise _bad(name, "True or False (a real boolean, not a string or number)", value)
    return bool(value)


def _optional(check: Any) -> Any:
    return lambda name, value: None if value is None else check(name, value)


def _mode(name: str, value: Any) -> str:
    return value  # checked in from_layers, before the mode defaults


def _noise(name: str, value: Any) -> str:
    check_noise_mode(value)
    return value


def _severity(name: str, value: Any) -> int:
    return _integer(
        name, value, SEVERITIES[0], SEVERITIES[-1], f"an integer in {SEVERITIES[0]}..{SEVERITIES[-1]}"
    )


def _count(low: int) -> Any:
    return lambda name, value: _integer(name, value, low)


def _token_id(name: str, value: Any) -> int:
    return _integer(name, value, 0, None, "a token id (an integer >= 0)")


def _token_ids(name: str, value: Any) -> tuple[int, ...]:
    items = [value] if isinstance(value, numbers.Integral) and not _is_bool(value) else value
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence) or not items:
        raise _bad(name, "a token id or a non-empty list of token ids", value)
    return tuple(_token_id(name, item) for item in items)


def _token_id_lists(name: str, value: Any) -> tuple[tuple[int, ...], ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value:
        raise _bad(name, "a non-empty list of non-empty lists of token ids", value)
    if any(not isinstance(item, Sequence) or isinstance(item, (str, bytes)) for item in value):
        # [5, 6] is ambiguous (one banned sequence, or two banned tokens?): transformers refuses it too
        raise _bad(name, "a non-empty list of non-empty lists of token ids", value)
    return tuple(_token_ids(name, item) for item in value)


def _stop(name: str, value: Any) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else value  # one string is ONE stop string
    if isinstance(items, (bytes, Mapping)) or not isinstance(items, Sequence):
        raise _bad(name, "a string or a list of non-empty strings", value)
    if any(not isinstance(item, str) or not item for item in items):
        raise _bad(name, "a string or a list of non-empty strings", value)
    return tuple(items)


def _seed(name: str, value: Any) -> int:
    return _integer(name, value, 0, MAX_SEED, "an integer in 0..2**64-1 (numpy and torch seeds), or None")


def _template_kwargs(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or any(not isinstance(key, str) for key in value):
        raise _bad(name, "a dict of keyword arguments for the chat template (string keys)", value)
    reserved = sorted({"conversation", "messages", "tools", "tokenize", "add_generation_prompt"} & set(value))
    if reserved:
        raise InvalidOptionError(
            f"chat_template_kwargs cannot set {', '.join(reserved)}: the engine sets them itself"
        )
    return dict(value)


def _video_masking(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in VIDEO_MASKING:
        raise _bad(name, f"one of {', '.join(VIDEO_MASKING)}", value)
    return value


def _alpha(name: str, value: Any) -> Any:
    return value  # a number, a table or "n-calibrated": normalize_alpha, once the mode is known


_CHECKS: dict[str, Any] = {
    "mode": _mode,
    "alpha": _alpha,
    "noise": _noise,
    "noise_scale": _in_range(0.0, 1.0),
    "noise_severity": _severity,
    "fresh_noise": _boolean,
    "shared_vision": _boolean,
    "share_prefix": _boolean,
    "multi_image_anyres": _boolean,
    "focus_one_image": _boolean,
    "plausibility_beta": _optional(_in_range(0.0, 1.0, high_open=True)),
    "max_new_tokens": _optional(_count(1)),
    "max_length": _optional(_count(1)),
    "min_new_tokens": _count(0),
    "min_length": _count(0),
    "do_sample": _boolean,
    "temperature": _positive,
    "top_k": _count(0),
    "top_p": _in_range(0.0, 1.0, low_open=True),
    "min_p": _optional(_in_range(0.0, 1.0)),
    "typical_p": _in_range(0.0, 1.0, low_open=True),
    "epsilon_cutoff": _in_range(0.0, 1.0, high_open=True),
    "eta_cutoff": _in_range(0.0, 1.0, high_open=True),
    "repetition_penalty": _positive,
    "no_repeat_ngram_size": _count(0),
    "bad_words_ids": _optional(_token_id_lists),
    "suppress_tokens": _optional(_token_ids),
    "eos_token_id": _optional(_token_ids),
    "pad_token_id": _optional(_token_id),
    "stop": _stop,
    "seed": _optional(_seed),
    "row_chunk_size": _optional(_count(1)),
    "chat_template_kwargs": _template_kwargs,
    "num_frames": _optional(_count(1)),
    "fps": _optional(_positive),
    "video_masking": _optional(_video_masking),
    "response_format": lambda name, value: ResponseFormat.parse(value),
    "logprobs": _boolean,
    "top_logprobs": _optional(
        lambda name, value: _integer(
            name, value, 0, MAX_TOP_LOGPROBS, f"an integer from 0 to {MAX_TOP_LOGPROBS}"
        )
    ),
}
assert set(_CHECKS) == set(FIELDS), "every option has exactly one check"
