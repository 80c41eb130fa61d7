"""Rows of several requests in ONE KV cache, decoded with one forward pass per step.

Each request is prefilled on its own, exactly as when it is decoded alone (shared vision, shared prefix,
its own length); its rows then join the batch. Caches of different lengths are right-aligned: the shorter
side is padded on the left with zero keys and values that the attention mask hides. Every row gets explicit
positions (its own count of real tokens, plus the rope offset for Qwen's 3-D positions), so a row computes
what it computes alone: the padding changes neither its positions nor what it attends to. A finished request
leaves (``Cache.batch_select_indices``), and columns that became padding for every row are cut off, so the
cache never grows beyond the longest request still running.

Full-attention layers keep their keys and values in a buffer with room for ``ROOM`` more positions
(:class:`RoomyLayer`): a step writes its token in place, where transformers' ``DynamicLayer`` copies the
whole cache to append one position (``torch.cat``: about 40% of a 40-row step of the bench model on CPU). The
attention reads the same values either way.

Only plain dynamic caches can be merged this way (full-attention and sliding-window layers, as every
supported family uses); ``can_batch`` says whether a model's cache qualifies.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import torch

from focus_integrations.decode import RowGroup, cache_kwarg, output_cache
from focus_integrations.families import FamilySpec, row_position_ids

ROOM = 64  # positions a full-attention layer's buffer grows by: one copy per ROOM steps, not one per step


def can_batch(model: torch.nn.Module) -> bool:
    """True when the model's KV cache is made of layers this module knows how to pad, merge and cut."""
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    layers = DynamicCache(config=model.config).layers
    return bool(layers) and all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers)


def _roomy_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class RoomyLayer(DynamicLayer):
        """A full-attention ``DynamicLayer`` whose keys and values are views of a buffer with spare room.

        ``update`` writes the new positions into the room (growing the buffer by ``ROOM`` when it is full)
        instead of concatenating. Anything that replaces ``keys``/``values`` (merging, pruning, cutting
        columns) is seen at the next update (they are no longer the views it handed out) and the buffer is
        rebuilt around the new tensors.
        """

        _buffers: tuple[torch.Tensor, torch.Tensor] | None = None
        _views: tuple[torch.Tensor, torch.Tensor] | None = None

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized or self.keys.numel() == 0:
                return super().update(key_states, value_states, *args, **kwargs)
            length, new = self.keys.shape[-2], key_states.shape[-2]
            views = self._views
            current = views is not None and views[0] is self.keys and views[1] is self.values
            if not current or self._buffers is None or length + new > self._buffers[0].shape[-2]:
                self._buffers = tuple(  # type: ignore[assignment]
                    self._with_room(old, length + new + ROOM) for old in (self.keys, self.values)
                )
            keys_buffer, values_buffer = self._buffers  # type: ignore[misc]
            keys_buffer[:, :, length : length + new] = key_states
            values_buffer[:, :, length : length + new] = value_states
            self.keys = keys_buffer[:, :, : length + new]
            self.values = values_buffer[:, :, : length + new]
            self._views = (self.keys, self.values)
            return self.keys, self.values

        @staticmethod
        def _with_room(tensor: torch.Tensor, capacity: int) -> torch.Tensor:
            batch, heads, length, dim = tensor.shape
            buffer = tensor.new_empty(batch, heads, capacity, dim)
            buffer[:, :, :length] = tensor
            return buffer

    return RoomyLayer


_ROOMY: type | None = None


def with_room(cache: Any) -> Any:
    """Give ``cache``'s full-attention layers a buffer with room (:class:`RoomyLayer`), in place; sliding
    layers (they drop old positions) stay as they are."""
    global _ROOMY
    from transformers.cache_utils import DynamicLayer

    if _ROOMY is None:
        _ROOMY = _roomy_layer_class()
    for index, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer:
            roomy = _ROOMY.__new__(_ROOMY)
            roomy.__dict__.update(layer.__dict__)
            cache.layers[index] = roomy
    return cache


def _stored(layer: Any, width: int) -> int:
    """How many positions a layer keeps for a sequence of ``width``: all, or the last window - 1."""
    return min(width, layer.sliding_window - 1) if getattr(layer, "is_sliding", False) else width


def _left_pad(tensor: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    missing = size - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class DecodeBatch:
    """The rows of several requests ("members", any hashable owner) in one cache, in member order."""

    def __init__(self, model: torch.nn.Module, spec: FamilySpec) -> None:
        self.model = model
        self.spec = spec
        self.device = next(model.parameters()).device
        self.members: list[tuple[Hashable, int]] = []  # (owner, rows), in row order
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # (rows, width): 0 on the left padding
        self.lengths: torch.Tensor | None = None  # (rows,): real tokens of each row
        self.rope_deltas: torch.Tensor | None = None  # (rows,): mrope offsets
        self._cache_kw = cache_kwarg(model)

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.members)

    @property
    def width(self) -> int:
        """Cached positions, padding included."""
        return 0 if self.mask is None else int(self.mask.shape[1])

    def __contains__(self, owner: Hashable) -> bool:
        return any(member == owner for member, _ in self.members)

    def add(self, owner: Hashable, group: RowGroup) -> None:
        """Take over a PREFILLED group's rows (and its cache) as ``owner``'s, after the current rows."""
        mask = group.attention_mask.to(self.device)
        lengths = mask.sum(dim=-1)
        deltas = None
        if self.spec.mrope:
            deltas = torch.zeros_like(lengths)
            if group.rope_deltas is not None:
                deltas = deltas + group.rope_deltas.to(self.device).view(-1).to(lengths.dtype)
        self.members.append((owner, group.batch))
        if self.cache is None:
            self.cache, self.mask, self.lengths, self.rope_deltas = (
                with_room(group.cache),
                mask,
                lengths,
                deltas,
            )
            return
        width = max(self.width, int(mask.shape[1]))
        for mine, theirs in zip(self.cache.layers, group.cache.layers):
            stored = _stored(mine, width)
            mine.keys = torch.cat([_left_pad(mine.keys, stored, 2), _left_pad(theirs.keys, stored, 2)])
            mine.values = torch.cat([_left_pad(mine.values, stored, 2), _left_pad(theirs.values, stored, 2)])
            if hasattr(mine, "cumulative_length"):  # sliding layers count every position, padding included
                mine.cumulative_length = width
        self.mask = torch.cat([_left_pad(self.mask, width, 1), _left_pad(mask, width, 1)])
        self.lengths = torch.cat([self.lengths, lengths])
        if deltas is not None:
            self.rope_deltas = torch.cat([self.rope_deltas, deltas])

    def remove(self, owners: set[Hashable]) -> None:
        """Drop the rows of ``owners``; cut the columns that are padding for every remaining row."""
        if not any(owner in owners for owner, _ in self.members):
            return
        keep: list[int] = []
        start = 0
        for owner, rows in self.members:
            if owner not in owners:
                keep.extend(range(start, start + rows))
            start += rows
        self.members = [(owner, rows) for owner, rows in self.members if owner not in owners]
        if not keep:
            self.cache = self.mask = self.lengths = self.rope_deltas = None
            return
        # A CPU index works for cache layers on any device (device_map may spread them over several GPUs).
        self.cache.batch_select_indices(torch.tensor(keep))
        index = torch.tensor(keep, device=self.device)
        self.mask, self.lengths = self.mask[index], self.lengths[index]
        if self.rope_deltas is not None:
            self.rope_deltas = self.rope_deltas[index]
        unused = int(self.mask.any(dim=0).int().argmax())  # leading columns that are padding for every row
        if unused:
            width = self.width - unused
            for layer in self.cache.layers:
                keep_positions = _stored(layer, width)
                layer.keys = layer.keys[:, :, -keep_positions:]
                layer.values = layer.values[:, :, -keep_positions:]
                if hasattr(layer, "cumulative_length"):
                    layer.cumulative_length = width
            self.mask = self.mask[:, unused:]

    @torch.inference_mode()
    def step(self, tokens: dict[Hashable, int]) -> dict[Hashable, torch.Tensor]:
        """Append each member's token to all its rows; each member's next fp32 logits ``(rows, vocab)``."""
        ids = torch.tensor(
            [tokens[owner] for owner, rows in self.members for _ in range(rows)], device=self.device
        ).view(-1, 1)
        # The mask covers past + new tokens (a mask of the new tokens only is silently wrong).
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        output = self.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=row_position_ids(self.spec, self.lengths, self.rope_deltas),
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kw: self.cache},
        )
        self.cache = output_cache(output)
        self.lengths = self.lengths + 1
        logits = output.logits[:, -1].float()
        result: dict[Hashable, torch.Tensor] = {}
        start = 0
        for owner, rows in self.members:
            result[owner] = logits[start : start + rows]
            start += rows
        return result
