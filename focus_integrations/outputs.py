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


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token and its log-probability under the combined rule.

    ``logprob`` is ``log_softmax`` of the COMBINED logits of that step (for FOCUS ``sum_k z_k - alpha N z_0``,
    after the plausibility cutoff and the image-placeholder ban), before repetition penalty, temperature,
    top-k / top-p and a grammar constraint: the distribution of the logits rule itself, the one ``score()``
    reports, whatever the sampling settings. ``top`` holds the ``top_logprobs`` likeliest tokens of that
    distribution as ``(token_id, token, logprob)``, likeliest first. ``token`` is the token decoded on its own
    (a piece of a multi-byte character decodes as U+FFFD).
    """

    token_id: int
    token: str
    logprob: float
    top: tuple[tuple[int, str, float], ...] = ()


@dataclass
class GenerationOutput:
    """What one decode produced.

    ``finish_reason`` is ``"stop"`` when the model emitted an end token, a stop string matched
    (then ``stop_sequence`` holds it) or the ``response_format`` grammar was complete, ``"length"`` when
    ``max_new_tokens`` ran out. ``settings`` records the options actually used, plus ``n_images`` and
    ``n_rows``. ``constraint_satisfied`` is ``None`` without a ``response_format``; otherwise True only when
    ``text`` is a complete answer of its grammar (False: cut off by ``max_new_tokens`` or a stop string, so
    it must not be parsed as if it were valid). ``logprobs`` (with ``logprobs=True`` or ``top_logprobs=k``) has
    one :class:`TokenLogprob` per entry of ``token_ids``.
    """

    text: str
    token_ids: list[int]
    usage: Usage
    finish_reason: FinishReason
    stop_sequence: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    constraint_satisfied: bool | None = None
    logprobs: list[TokenLogprob] | None = None  # one per token_ids entry when asked (logprobs / top_logprobs)


def answer_logprobs(output: GenerationOutput) -> list[TokenLogprob]:
    """The log-probs of the answer's tokens: ``output.logprobs`` without a final end-of-sequence token (not
    part of the text), one of the ids this request ended on (``settings["eos_token_id"]``: its own option,
    else the generation config's)."""
    eos = output.settings.get("eos_token_id") or ()
    eos_token_ids = {eos} if isinstance(eos, int) else set(eos)
    entries = list(output.logprobs or ())
    if entries and entries[-1].token_id in eos_token_ids and output.finish_reason == "stop":
        entries = entries[:-1]
    return entries


def openai_logprobs(output: GenerationOutput) -> dict[str, Any]:
    """:func:`answer_logprobs` in OpenAI's Chat Completions shape (ChatOpenAI's
    ``response_metadata["logprobs"]``; what the server sends):
    ``{"content": [{"token", "bytes", "logprob", "top_logprobs": [{"token", "bytes", "logprob"}]}],
    "refusal": None}``."""
    entries = answer_logprobs(output)

    def one(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "bytes": list(token.encode("utf-8")), "logprob": logprob}

    return {
        "content": [
            {**one(e.token, e.logprob), "top_logprobs": [one(t, lp) for _, t, lp in e.top]} for e in entries
        ],
        "refusal": None,
    }
