"""Result types of the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class GenerationOutput:
    """What one decode produced.

    ``finish_reason`` is ``"stop"`` when the model emitted an end token, a stop string matched
    (then ``stop_sequence`` holds it) or the ``response_format`` grammar was complete, ``"length"`` when
    ``max_new_tokens`` ran out. ``settings`` records the options actually used, plus ``n_images`` and
    ``n_rows``. ``constraint_satisfied`` is ``None`` without a ``response_format``; otherwise True only when
    ``text`` is a complete answer of its grammar (False: cut off by ``max_new_tokens`` or a stop string, so
    it must not be parsed as if it were valid).
    """

    text: str
    token_ids: list[int]
    usage: Usage
    finish_reason: FinishReason
    stop_sequence: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    constraint_satisfied: bool | None = None
