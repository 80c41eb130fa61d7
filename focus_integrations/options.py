"""Validated decoding options (one frozen dataclass; every entry point builds it through ``resolve``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from focus_integrations.constraints import ResponseFormat
from focus_integrations.errors import InvalidOptionError
from focus_integrations.noise import DEFAULT_NOISE, check_noise_mode

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


@dataclass(frozen=True)
class DecodingOptions:
    """Everything that decides what a decode does. ``None`` fields take their mode's default.

    ``alpha`` is a number, a table ``{N: alpha}`` (alpha per number of images, or of image groups, N; a
    request whose N is not in the table takes the nearest N's, ties to the smaller; JSON keys may be strings),
    or ``"n-calibrated"``: alpha = (N-1)/N for each request, the rule ``z_0 + sum_k (z_k - z_0)``
    (docs/engine.md derives it; FOCUS only).

    Video content (``{"type": "video"}`` items, ``videos=``) is sampled to ``num_frames`` frames (default 8), or
    at ``fps`` frames per second with ``num_frames`` as the most; ``video_masking="frame"`` (the reference)
    makes every frame its own FOCUS slot, ``"video"`` one group per video.

    Sampling controls (``repetition_penalty``, ``temperature``, ``top_k``, ``top_p``) act on the COMBINED
    logits. With FOCUS the combination is a sum over N rows, so logits grow about N times before
    temperature: the effective temperature is roughly ``temperature / N`` (greedy decoding is unaffected).
    """

    mode: Mode = "focus"
    alpha: float | str | AlphaTable | None = None
    noise: str | None = None
    noise_scale: float | None = None
    fresh_noise: bool = False
    shared_vision: bool = True
    share_prefix: bool = True
    plausibility_beta: float | None = None
    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    row_chunk_size: int | None = None
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
    def resolve(cls, base: DecodingOptions | None = None, **overrides: Any) -> DecodingOptions:
        """``base`` (or the defaults) updated with ``overrides``, mode defaults filled in, all validated."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidOptionError(
                f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = dataclasses.asdict(base) if base is not None else {}
        if base is not None:  # asdict would flatten it into a plain dict of its fields
            values["response_format"] = base.response_format
        values.update(
            {k: v for k, v in overrides.items() if v is not None or k in ("top_k", "top_p", "seed")}
        )
        if isinstance(values.get("stop"), str):
            values["stop"] = (values["stop"],)
        values["stop"] = tuple(values.get("stop") or ())
        mode = values.get("mode", "focus")
        if mode not in MODES:
            raise InvalidOptionError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        for key, default in _MODE_DEFAULTS[mode].items():
            if values.get(key) is None:
                values[key] = default
        if "alpha" in values:
            values["alpha"] = normalize_alpha(values["alpha"], mode)
        values["response_format"] = ResponseFormat.parse(values.get("response_format"))
        options = cls(**values)
        options._validate()
        return options

    def _validate(self) -> None:
        def bad(msg: str) -> None:
            raise InvalidOptionError(msg)

        check_noise_mode(self.noise or DEFAULT_NOISE)
        if not _is_number(self.noise_scale) or not 0.0 <= self.noise_scale <= 1.0:
            bad(f"noise_scale must be in [0, 1], got {self.noise_scale!r}")
        if self.plausibility_beta is not None and (
            not _is_number(self.plausibility_beta) or not 0.0 <= self.plausibility_beta < 1.0
        ):
            bad(f"plausibility_beta must be in [0, 1) or None, got {self.plausibility_beta!r}")
        if (
            not isinstance(self.max_new_tokens, int)
            or isinstance(self.max_new_tokens, bool)
            or self.max_new_tokens < 1
        ):
            bad(f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}")
        if not _is_number(self.temperature) or self.temperature <= 0:
            bad(f"temperature must be > 0, got {self.temperature!r}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            bad(f"top_k must be an integer >= 1 or None, got {self.top_k!r}")
        if self.top_p is not None and (not _is_number(self.top_p) or not 0.0 < self.top_p <= 1.0):
            bad(f"top_p must be in (0, 1] or None, got {self.top_p!r}")
        if not _is_number(self.repetition_penalty) or self.repetition_penalty <= 0:
            bad(f"repetition_penalty must be > 0, got {self.repetition_penalty!r}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            bad(f"stop must be a list of non-empty strings, got {self.stop!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            bad(f"seed must be an integer or None, got {self.seed!r}")
        if self.row_chunk_size is not None and (
            not isinstance(self.row_chunk_size, int) or self.row_chunk_size < 1
        ):
            bad(f"row_chunk_size must be an integer >= 1 or None, got {self.row_chunk_size!r}")
        if self.num_frames is not None and (
            not isinstance(self.num_frames, int) or isinstance(self.num_frames, bool) or self.num_frames < 1
        ):
            bad(f"num_frames must be an integer >= 1 or None, got {self.num_frames!r}")
        if self.fps is not None and (not _is_number(self.fps) or not 0 < self.fps < float("inf")):
            bad(f"fps must be a positive number or None, got {self.fps!r}")
        if self.video_masking is not None and self.video_masking not in VIDEO_MASKING:
            bad(f"video_masking must be one of {', '.join(VIDEO_MASKING)}, got {self.video_masking!r}")
        if not isinstance(self.logprobs, bool):
            bad(f"logprobs must be True or False, got {self.logprobs!r}")
        if self.top_logprobs is not None and (
            not isinstance(self.top_logprobs, int)
            or isinstance(self.top_logprobs, bool)
            or not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS
        ):
            bad(
                f"top_logprobs must be an integer from 0 to {MAX_TOP_LOGPROBS} or None, got {self.top_logprobs!r}"
            )

    def as_settings(self) -> dict[str, Any]:
        values = dataclasses.asdict(self) | {"stop": list(self.stop)}
        values["response_format"] = (
            self.response_format.to_dict() if self.response_format is not None else None
        )
        if isinstance(self.alpha, tuple):
            values["alpha"] = dict(self.alpha)
        return values

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
            f"alpha must be a number >= 0, a {{N: alpha}} table or {N_CALIBRATED!r}, got {value!r}"
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
                raise InvalidOptionError(f"alpha for N={n} must be a number >= 0, got {alpha!r}")
            table[n] = float(alpha)
        return tuple(sorted(table.items()))
    if not _is_number(value) or value < 0:
        raise InvalidOptionError(
            f"alpha must be a number >= 0, a {{N: alpha}} table or {N_CALIBRATED!r}, got {value!r}"
        )
    return value


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
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
