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

    ``finish_reason`` is ``"stop"`` when the model emitted an end token or a stop string matched
    (then ``stop_sequence`` holds it), ``"length"`` when ``max_new_tokens`` ran out. ``settings`` records the
    options actually used, plus ``n_images`` and ``n_rows``.
    """

    text: str
    token_ids: list[int]
    usage: Usage
    finish_reason: FinishReason
    stop_sequence: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
