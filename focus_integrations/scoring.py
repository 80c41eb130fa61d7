"""Log-probability of given answers under a logits rule (teacher forcing, no sampling).

``log p(answer) = sum_t log_softmax(rule.combine(rows' logits at t))[answer_t]``. The prompt is prefilled once;
each candidate continues from a copy of that cache with all its tokens in one chunk.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from focus_integrations.decode import RowGroup
from focus_integrations.errors import PromptError
from focus_integrations.logits import LogitsRule


def candidate_token_ids(tokenizer: Any, candidates: Sequence[str]) -> list[list[int]]:
    """Each candidate tokenised on its own (no special tokens); not a list of non-empty strings: PromptError."""
    if (
        isinstance(candidates, str)
        or not isinstance(candidates, Sequence)
        or not candidates
        or not all(isinstance(c, str) for c in candidates)
    ):
        raise PromptError(f"candidates must be a non-empty list of strings, got {candidates!r:.200}")
    candidate_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in candidates]
    for text, ids in zip(candidates, candidate_ids):
        if not ids:
            raise PromptError(f"candidate {text!r} tokenises to nothing")
    return candidate_ids


@torch.inference_mode()
def score_candidates(
    groups: list[RowGroup], rule: LogitsRule, candidate_ids: list[list[int]]
) -> list[list[float]]:
    """Per-token log-probabilities of each candidate continuation (a list per candidate)."""
    first_logits = torch.cat([group.prefill() for group in groups], dim=0)
    first = torch.log_softmax(rule.combine(first_logits), dim=-1)
    saved = [(group.cache, group.attention_mask) for group in groups]
    results: list[list[float]] = []
    for ids in candidate_ids:
        token_logps = [float(first[ids[0]])]
        if len(ids) > 1:
            per_group = []
            for group, (cache, mask) in zip(groups, saved):
                group.cache, group.attention_mask = copy.deepcopy(cache), mask
                per_group.append(group.step(torch.tensor(ids[:-1]), all_positions=True))
            logits = torch.cat(per_group, dim=0)  # (rows, len(ids) - 1, vocab)
            for position, token in enumerate(ids[1:]):
                token_logps.append(float(torch.log_softmax(rule.combine(logits[:, position]), dim=-1)[token]))
        results.append(token_logps)
    for group, (cache, mask) in zip(groups, saved):
        group.cache, group.attention_mask = cache, mask
    return results
