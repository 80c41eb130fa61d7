"""The logits rules: how the rows are masked, and how their next-token logits become one vector.

A rule names, for each row of the batch, which image slots are clean (True) and which are noise (False), and
combines the rows' fp32 logits ``z`` of shape ``(rows, vocab)`` into one vector of shape ``(vocab,)``:

- ``vanilla``: one row, every image clean.
- ``focus``:   row 0 all noise, row k only image k clean; ``sum_k z_k - alpha * N * z_0`` (a SUM, as in the
  reference code, not a mean). With fewer than two images there is nothing to separate: plain decoding.
  With image groups (groups.py), N counts groups and row k keeps every image of group k clean.
- ``focus-n-calibrated`` (``alpha="n-calibrated"``): the same rows, ``z_0 + sum_k (z_k - z_0)``, which is the
  FOCUS rule at alpha = (N-1)/N for every N: each row adds only what its clean image changes relative to the
  all-noise row (a product of experts over the noise prior).
- ``vcd``:     row 0 clean, row 1 all images noised; ``(1 + alpha) * z_clean - alpha * z_noised``.

No plausibility cutoff is applied unless ``plausibility_beta`` is set (VCD's rule: keep only tokens whose
probability under the un-contrasted rows is at least ``beta`` times the largest). Bans such as top-k act on the
combined vector afterwards, so ``-inf - -inf = NaN`` cannot arise inside the contrast.

Each step is a small object with one ``__call__``, like transformers' logits processors: a combination
(``VanillaCombination``, ``FocusCombination``, ``CalibratedFocusCombination``, ``VcdCombination``), then
``PlausibilityCutoff`` and ``BanTokens``; ``build_rule`` picks them for a request and ``LogitsRule`` applies
them in that order. ``TokenChooser`` then turns the combined vector into one token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from transformers import LogitsProcessorList

from focus_integrations.errors import ConstraintError
from focus_integrations.generation import generate_processors
from focus_integrations.options import N_CALIBRATED, DecodingOptions

if TYPE_CHECKING:
    from focus_integrations.constraints import GrammarConstraint

RowMasks = tuple[tuple[bool, ...], ...]


def focus_combine(logits: torch.Tensor, alpha: float) -> torch.Tensor:
    """FOCUS: ``sum_{k=1..N} z_k - alpha * N * z_0``; row 0 is the all-noise reference."""
    n_images = logits.shape[0] - 1
    return logits[1:].sum(dim=0) - alpha * n_images * logits[0]


def calibrated_focus_combine(logits: torch.Tensor) -> torch.Tensor:
    """N-calibrated FOCUS: ``z_0 + sum_k (z_k - z_0)`` = ``sum_k z_k - (N-1) * z_0``, FOCUS at alpha = (N-1)/N.

    As log-probabilities (up to a constant per row), ``log p_0 + sum_k (log p_k - log p_0)``: the noise prior
    once, plus each row's evidence relative to it. A row whose own image says nothing about the question
    (it answers like the all-noise row) adds nothing, whatever N is; the faithful rule with a fixed alpha
    counts the prior ``N * (1 - alpha)`` times, so the same alpha means a different rule at each N.
    """
    reference = logits[0]
    return reference + (logits[1:] - reference).sum(dim=0)


def vcd_combine(logits: torch.Tensor, alpha: float) -> torch.Tensor:
    """VCD: ``(1 + alpha) * z_clean - alpha * z_noised``; row 0 clean, row 1 noised."""
    return (1.0 + alpha) * logits[0] - alpha * logits[1]


# ------------------------------------------------------------------------------------ the rules, one idea each
# Like transformers' logits processors: each object does one thing in its ``__call__``. A combination turns
# the rows' logits ``(rows, vocab)`` into one vector; ``clean_rows`` says which rows show the clean images (the
# plausibility cutoff's reference); ``alpha`` is reported in ``settings``.


@dataclass(frozen=True)
class VanillaCombination:
    """One row, every image clean: its logits as they are."""

    name: ClassVar[str] = "vanilla"
    clean_rows: ClassVar[slice] = slice(0, 1)
    alpha: float = 0.0

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[0]


@dataclass(frozen=True)
class FocusCombination:
    """FOCUS with a fixed (per-N resolved) alpha: :func:`focus_combine`."""

    alpha: float
    name: ClassVar[str] = "focus"
    clean_rows: ClassVar[slice] = slice(1, None)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return focus_combine(logits, self.alpha)


@dataclass(frozen=True)
class CalibratedFocusCombination(FocusCombination):
    """N-calibrated FOCUS on FOCUS's rows: :func:`calibrated_focus_combine` (``alpha`` = (N-1)/N, reported)."""

    name: ClassVar[str] = "focus-n-calibrated"

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return calibrated_focus_combine(logits)


@dataclass(frozen=True)
class VcdCombination:
    """VCD: :func:`vcd_combine`; row 0 clean, row 1 noised."""

    alpha: float
    name: ClassVar[str] = "vcd"
    clean_rows: ClassVar[slice] = slice(0, 1)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return vcd_combine(logits, self.alpha)


Combination = (
    VanillaCombination | FocusCombination | VcdCombination
)  # CalibratedFocusCombination is a FocusCombination


@dataclass(frozen=True)
class PlausibilityCutoff:
    """VCD's cutoff: -inf for every token whose probability under ``reference`` is below ``beta`` times the
    largest (the largest among the ``allowed`` tokens when a grammar restricts them, so one always stays)."""

    beta: float

    def __call__(
        self, combined: torch.Tensor, reference: torch.Tensor, allowed: torch.Tensor | None = None
    ) -> torch.Tensor:
        if allowed is not None:
            reference = reference.masked_fill(~allowed.to(reference.device), float("-inf"))
        probs = torch.softmax(reference, dim=-1)
        keep = probs >= self.beta * probs.max()
        return combined.masked_fill(~keep, float("-inf"))


@dataclass(frozen=True)
class BanTokens:
    """-inf for ``token_ids``: image placeholders are input-only (one generated would corrupt the next turn)."""

    token_ids: tuple[int, ...]

    def __call__(self, combined: torch.Tensor) -> torch.Tensor:
        ids = torch.tensor(self.token_ids, device=combined.device)
        return combined.index_fill(-1, ids, float("-inf"))


def plausibility_cutoff(
    combined: torch.Tensor, reference: torch.Tensor, beta: float, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """:class:`PlausibilityCutoff` as a function."""
    return PlausibilityCutoff(beta)(combined, reference, allowed)


@dataclass(frozen=True)
class LogitsRule:
    """One request's decoding method: the rows it needs (``row_masks``), then its combination, the optional
    plausibility cutoff and the token ban, applied in that order by :meth:`combine`."""

    combination: Combination
    row_masks: RowMasks
    cutoff: PlausibilityCutoff | None = None
    ban: BanTokens | None = None

    @property
    def name(self) -> str:
        return self.combination.name

    @property
    def alpha(self) -> float:
        return self.combination.alpha

    @property
    def plausibility_beta(self) -> float | None:
        return self.cutoff.beta if self.cutoff is not None else None

    @property
    def n_rows(self) -> int:
        return len(self.row_masks)

    def combine(self, logits: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """``logits``: fp32 ``(n_rows, vocab)`` -> combined fp32 ``(vocab,)``.

        ``allowed`` (bool ``(vocab,)``, from a grammar constraint) restricts the plausibility cutoff's reference
        to the tokens the grammar allows. Bans come last, so ``-inf - -inf = NaN`` never arises in a contrast.
        """
        combined = self.combination(logits)
        if self.cutoff is not None:
            combined = self.cutoff(combined, self.uncontrasted(logits), allowed)
        if self.ban is not None:
            combined = self.ban(combined)
        return combined

    def uncontrasted(self, logits: torch.Tensor) -> torch.Tensor:
        """What the model says from the clean rows alone: the reference for the plausibility cutoff."""
        clean = logits[self.combination.clean_rows]
        return clean[0] if clean.shape[0] == 1 else clean.mean(dim=0)


def build_rule(
    options: DecodingOptions,
    n_images: int,
    banned_token_ids: tuple[int, ...] = (),
    *,
    groups: Sequence[int] | None = None,
) -> LogitsRule:
    """The rule for ``options.mode`` over ``n_images`` image slots (prompt order).

    ``groups``: the group number (0..N-1) of each slot; ``None`` means each image is its own group.
    """
    all_clean = (True,) * n_images
    all_noise = (False,) * n_images
    groups = tuple(range(n_images)) if groups is None else tuple(groups)
    if len(groups) != n_images:
        raise ValueError(f"{len(groups)} group numbers for {n_images} images")
    n_groups = len(set(groups))
    ban = BanTokens(tuple(banned_token_ids)) if banned_token_ids else None
    cutoff = PlausibilityCutoff(options.plausibility_beta) if options.plausibility_beta is not None else None
    if options.mode == "focus" and n_groups >= (1 if options.focus_one_image else 2):
        masks = (all_noise,) + tuple(tuple(g == k for g in groups) for k in range(n_groups))
        alpha = options.alpha_for(n_groups)
        calibrated = options.alpha == N_CALIBRATED
        combination = CalibratedFocusCombination(alpha) if calibrated else FocusCombination(alpha)
        return LogitsRule(combination, masks, cutoff, ban)
    if options.mode == "vcd" and n_images >= 1:
        return LogitsRule(VcdCombination(options.alpha_for(n_images)), (all_clean, all_noise), cutoff, ban)
    # vanilla, and FOCUS with a single image or group (the reference code skips FOCUS on the one-image queries
    # it passes without noise; ``focus_one_image`` decodes the ones it passes with noise rows).
    return LogitsRule(VanillaCombination(), (all_clean,), None, ban)


class TokenChooser:
    """Turns the combined logits of ONE request into ONE token per step (appended to every row of it).

    With a ``constraint`` (a per-request :class:`~focus_integrations.constraints.GrammarConstraint`), the
    grammar masks the combined vector FIRST, then the processors (repetition penalty, temperature, top-k,
    top-p) act on the allowed tokens only: top-k/top-p keep the best ALLOWED tokens, so no warper can leave
    nothing to choose. Should a processor still remove every allowed token (a ban, a minimum length while
    the grammar only allows EOS), the grammar wins and the masked scores are used as they were. The chosen
    token advances the constraint; ``finished`` then says the grammar is complete and decoding stops.
    """

    def __init__(
        self,
        options: DecodingOptions,
        generator: torch.Generator | None = None,
        constraint: GrammarConstraint | None = None,
    ) -> None:
        self.options = options
        self.sampling = options.do_sample
        self.generator = generator
        self.constraint = constraint
        self.processors: LogitsProcessorList | None = None

    def _processors(self, combined: torch.Tensor, sequence: torch.Tensor) -> LogitsProcessorList:
        # transformers' own processors, built as model.generate builds them (generation.py), on the first call:
        # its sequence is the prompt and its logits tell the device.
        if self.processors is None:
            eos = self.options.eos_token_id or ()
            self.processors = generate_processors(
                self.options, int(sequence.shape[0]), eos, device=combined.device
            )
        return self.processors

    def allowed(self) -> torch.Tensor | None:
        """The tokens the constraint allows at this step (None: unconstrained); see ``LogitsRule.combine``."""
        return self.constraint.allowed() if self.constraint is not None else None

    @property
    def finished(self) -> bool:
        """The constraint is complete: no token may follow."""
        return self.constraint is not None and self.constraint.finished

    def __call__(self, combined: torch.Tensor, sequence: torch.Tensor) -> int:
        """``combined``: (vocab,) fp32; ``sequence``: (length,) prompt + generated ids of one row."""
        scores = combined[None].clone()
        if self.constraint is not None:
            scores = self.constraint.mask(scores)
            if not torch.isfinite(scores).any():
                raise ConstraintError(
                    f"no token the {self.constraint.response_format.type} constraint allows can be generated "
                    "here (every allowed token is banned)"
                )
        processed = self._processors(combined, sequence)(sequence[None], scores)
        if self.constraint is not None and not torch.isfinite(processed).any():
            processed = scores
        processed = processed[0]
        if not self.sampling:
            token = int(torch.argmax(processed))
        else:
            probs = torch.softmax(processed, dim=-1)
            token = int(torch.multinomial(probs, 1, generator=self.generator))
        if self.constraint is not None:
            self.constraint.advance(token)
        return token
