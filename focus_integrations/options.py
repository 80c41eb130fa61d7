"""Validated decoding options (one frozen dataclass; every entry point builds it through ``resolve``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from focus_integrations.errors import InvalidOptionError
from focus_integrations.noise import DEFAULT_NOISE, check_noise_mode

Mode = Literal["focus", "vanilla", "vcd"]
MODES: tuple[str, ...] = ("focus", "vanilla", "vcd")

# Per-mode defaults where the methods differ: FOCUS (README example of the reference code) and VCD (its paper).
_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "focus": {"alpha": 0.1, "noise": DEFAULT_NOISE, "noise_scale": 1.0, "plausibility_beta": None},
    "vanilla": {"alpha": 0.0, "noise": DEFAULT_NOISE, "noise_scale": 1.0, "plausibility_beta": None},
    "vcd": {"alpha": 1.0, "noise": "imagenet+diffusion", "noise_scale": 0.5, "plausibility_beta": 0.1},
}


@dataclass(frozen=True)
class DecodingOptions:
    """Everything that decides what a decode does. ``None`` fields take their mode's default.

    Sampling controls (``repetition_penalty``, ``temperature``, ``top_k``, ``top_p``) act on the COMBINED
    logits. With FOCUS the combination is a sum over N rows, so logits grow about N times before
    temperature: the effective temperature is roughly ``temperature / N`` (greedy decoding is unaffected).
    """

    mode: Mode = "focus"
    alpha: float | None = None
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
        options = cls(**values)
        options._validate()
        return options

    def _validate(self) -> None:
        def bad(msg: str) -> None:
            raise InvalidOptionError(msg)

        check_noise_mode(self.noise or DEFAULT_NOISE)
        if not _is_number(self.alpha) or self.alpha < 0:
            bad(f"alpha must be a number >= 0, got {self.alpha!r}")
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

    def as_settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"stop": list(self.stop)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
