"""Lockstep decoding of the masked rows: one batched prefill, then one cached step per token for all rows.

The rows of a request share every generated token, so they advance together: each step feeds the chosen
token to every row, gets the rows' next-token logits, and the logits rule combines them. When a request has
more rows than fit in memory at once, the rows are split into groups (``row_chunk_size``), each with its own
KV cache; the groups run one after another at each step and their logits are concatenated, so the result is
the same as one big batch.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from focus_integrations.families import FamilySpec, clear_rope_deltas, rope_deltas_of, step_position_ids
from focus_integrations.logits import RowMasks
from focus_integrations.prefix import prefill_sharing_prefix

if TYPE_CHECKING:
    from focus_integrations.vision import SharedEncoding


def cache_kwarg(model: torch.nn.Module) -> str:
    """transformers 5.24 renamed ``past_key_values`` to ``cache``; accept both generations."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def output_cache(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


class RowGroup:
    """A batch of rows with its own KV cache: ``prefill`` once, then ``step`` per token."""

    def __init__(
        self,
        model: torch.nn.Module,
        spec: FamilySpec,
        inputs: dict[str, Any],
        shared_prefix: tuple[SharedEncoding, RowMasks] | None = None,
    ) -> None:
        self.model = model
        self.spec = spec
        self.device = next(model.parameters()).device
        self.inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        self.batch = int(self.inputs["input_ids"].shape[0])
        self.attention_mask = self.inputs.get("attention_mask")
        if self.attention_mask is None:
            self.attention_mask = torch.ones_like(self.inputs["input_ids"])
            self.inputs["attention_mask"] = self.attention_mask
        self.cache: Any = None
        self.rope_deltas: torch.Tensor | None = None
        self.shared_prefix = shared_prefix
        self._cache_kw = cache_kwarg(model)

    @property
    def past_length(self) -> int:
        return int(self.attention_mask.shape[1])

    @torch.inference_mode()
    def prefill(self, *, all_positions: bool = False) -> torch.Tensor:
        """Run the prompt; return fp32 logits of the last position (rows, vocab), or of every position."""
        if self.shared_prefix is not None and not all_positions:
            encoding, masks = self.shared_prefix
            logits, self.cache, self.rope_deltas = prefill_sharing_prefix(
                self.model, self.spec, encoding, masks, self._cache_kw, self.device
            )
            return logits
        kwargs = dict(self.inputs, use_cache=True)
        if not all_positions:
            kwargs["logits_to_keep"] = 1
        if self.spec.mrope:
            # The model keeps the offsets of its LAST image prefill; a text-only prefill leaves them stale.
            clear_rope_deltas(self.model)
        output = self.model(**kwargs)
        self.cache = output_cache(output)
        # Read right away: any later forward of this model object overwrites it.
        self.rope_deltas = rope_deltas_of(self.model) if self.spec.mrope else None
        logits = output.logits.float()
        return logits if all_positions else logits[:, -1, :]

    @torch.inference_mode()
    def step(self, token_ids: torch.Tensor, *, all_positions: bool = False) -> torch.Tensor:
        """Append ``token_ids`` (1-D, the same for every row) and return the rows' fp32 logits."""
        new = token_ids.to(self.device).view(1, -1).expand(self.batch, -1)
        n_new = new.shape[1]
        positions = step_position_ids(
            self.spec, self.past_length, n_new, self.rope_deltas, self.batch, self.device
        )
        # The mask must cover past + new tokens: a mask of the new tokens only is silently wrong.
        self.attention_mask = torch.cat(
            [self.attention_mask, self.attention_mask.new_ones(self.batch, n_new)], dim=1
        )
        kwargs: dict[str, Any] = {
            "input_ids": new,
            "attention_mask": self.attention_mask,
            self._cache_kw: self.cache,
            "use_cache": True,
        }
        if positions is not None:
            kwargs["position_ids"] = positions
        if not all_positions:
            kwargs["logits_to_keep"] = 1
        output = self.model(**kwargs)
        self.cache = output_cache(output)
        logits = output.logits.float()
        return logits if all_positions else logits[:, -1, :]


def prefill_logits(groups: list[RowGroup]) -> torch.Tensor:
    """Prefill every group; the rows' last-position fp32 logits, in row order ``(rows, vocab)``."""
    return torch.cat([group.prefill() for group in groups], dim=0)


def step_logits(groups: list[RowGroup], token: int) -> torch.Tensor:
    """Append ``token`` to every row of every group; the rows' next fp32 logits ``(rows, vocab)``."""
    token_tensor = torch.tensor([token], device=groups[0].device)
    return torch.cat([group.step(token_tensor) for group in groups], dim=0)
