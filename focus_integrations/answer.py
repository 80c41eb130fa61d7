"""One request's answer as it is decoded: the rows' logits -> one token -> text, and when it ends.

The same object drives a request decoded alone (``TextStream``) and a request inside a batch of several
(``batching.BatchRunner``), so both end on the same token for the same reason.
"""

from __future__ import annotations

from typing import Any

import torch

from focus_integrations.logits import TokenChooser
from focus_integrations.logprobs import recorder_for
from focus_integrations.outputs import FinishReason, GenerationOutput, Usage
from focus_integrations.request import PreparedRequest
from focus_integrations.text import IncrementalDetokenizer


class Answer:
    """The per-request decoding state: its token choice (own generator), its sequence, its text and stop.

    ``choose(logits)`` combines the request's rows with its rule and picks the next token; ``push(token)``
    records it and returns the text that became final. ``finished`` turns True on an end token, a stop string
    or ``max_new_tokens``; no forward pass is needed after that.
    """

    def __init__(
        self,
        request: PreparedRequest,
        chooser: TokenChooser,
        tokenizer: Any,
        eos_token_ids: set[int],
        device: torch.device,
    ) -> None:
        self.request = request
        self.chooser = chooser
        self.eos_token_ids = eos_token_ids
        self.detok = IncrementalDetokenizer(tokenizer, request.options.stop)
        self.sequence = request.prompt_ids.to(device)  # prompt + generated ids (repetition penalty reads it)
        self.token_ids: list[int] = []
        self.logprobs = recorder_for(request.options)  # None unless the request asks for log-probabilities
        self.tokenizer = tokenizer
        self.finish_reason: FinishReason | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def last_token(self) -> int:
        return self.token_ids[-1]

    def choose(self, logits: torch.Tensor) -> int:
        """``logits``: fp32 ``(rows, vocab)`` of this request's rows, in rule order -> its next token."""
        # A grammar constraint restricts the plausibility cutoff's reference to the tokens it allows.
        combined = self.request.rule.combine(logits, self.chooser.allowed())
        token = self.chooser(combined, self.sequence)
        if self.logprobs is not None:
            self.logprobs.record(combined, token)
        return token

    def push(self, token: int) -> str:
        """Record ``token``; return the text that became final (possibly empty)."""
        self.token_ids.append(token)
        self.sequence = torch.cat([self.sequence, self.sequence.new_tensor([token])])
        if token in self.eos_token_ids:
            self.finish_reason = "stop"
            return ""
        delta = self.detok.push(token)
        if self.detok.stopped or self.chooser.finished:  # a complete grammar accepts nothing more
            self.finish_reason = "stop"
        elif len(self.token_ids) >= self.request.max_new_tokens:
            self.finish_reason = "length"
        return delta

    def flush(self) -> str:
        """The text held back (an unfinished character or stop-string prefix), once decoding has ended."""
        return self.detok.flush()

    def output(self) -> GenerationOutput:
        assert self.finish_reason is not None, "the answer is not finished"
        return GenerationOutput(
            text=self.detok.text,
            token_ids=list(self.token_ids),
            usage=Usage(self.request.prompt_length, len(self.token_ids)),
            finish_reason=self.finish_reason,
            stop_sequence=self.detok.stop_sequence,
            settings=self.request.settings(),
            constraint_satisfied=self.constraint_satisfied,
            logprobs=self.logprobs.result(self.tokenizer) if self.logprobs is not None else None,
        )

    @property
    def constraint_satisfied(self) -> bool | None:
        """None without a constraint; else whether the text is a complete answer of its grammar."""
        constraint = self.chooser.constraint
        if constraint is None:
            return None
        return constraint.satisfied and self.detok.stop_sequence is None
