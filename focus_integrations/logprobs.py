"""Per-token log-probabilities of an answer, under the combined rule (``GenerationOutput.logprobs``).

Each step's distribution is ``log_softmax`` of the combined logits the token is chosen from, before the
sampling processors (repetition penalty, temperature, top-k / top-p) and a grammar mask: what the logits rule
itself says, so a greedy answer's log-probabilities equal ``FocusDecoder.score_tokens`` of the same tokens.
"""

from __future__ import annotations

from typing import Any

import torch

from focus_integrations.outputs import TokenLogprob


class LogprobRecorder:
    """Collects, step by step, the chosen token's log-probability and the ``top`` likeliest tokens."""

    def __init__(self, top: int = 0) -> None:
        self.top = top
        self._steps: list[tuple[int, float, list[tuple[int, float]]]] = []

    def record(self, combined: torch.Tensor, token: int) -> None:
        """``combined``: the step's fp32 ``(vocab,)`` combined logits; ``token``: the token chosen from them."""
        logp = torch.log_softmax(combined.float(), dim=-1)
        best: list[tuple[int, float]] = []
        if self.top:
            values, ids = torch.topk(logp, min(self.top, logp.shape[-1]))
            best = list(zip(ids.tolist(), values.tolist()))
        self._steps.append((token, float(logp[token]), best))

    def result(self, tokenizer: Any) -> list[TokenLogprob]:
        """The recorded steps, with every token id decoded to its text (once, at the end)."""
        ids = {token for token, _, _ in self._steps} | {i for _, _, best in self._steps for i, _ in best}
        text = {i: tokenizer.decode([i], skip_special_tokens=False) for i in ids}
        return [
            TokenLogprob(token, text[token], logprob, tuple((i, text[i], lp) for i, lp in best))
            for token, logprob, best in self._steps
        ]


def recorder_for(options: Any) -> LogprobRecorder | None:
    """A recorder when the options ask for log-probabilities (``logprobs`` or ``top_logprobs``), else None."""
    if not options.logprobs and options.top_logprobs is None:
        return None
    return LogprobRecorder(options.top_logprobs or 0)
