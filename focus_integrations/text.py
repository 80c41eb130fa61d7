"""Incremental detokenisation with stop strings, for streaming.

Decoding token by token can split a multi-byte character (byte-level BPE yields U+FFFD until it is complete)
and a stop string can arrive across several tokens: text is held back until it can no longer change or be
the start of a stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.token_ids: list[int] = []
        self.text = ""  # final text so far (stop string excluded once matched)
        self.stop_sequence: str | None = None
        self._emitted = 0

    @property
    def stopped(self) -> bool:
        return self.stop_sequence is not None

    def push(self, token_id: int) -> str:
        """Add one token; return the text that became final (possibly empty)."""
        self.token_ids.append(token_id)
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        match = self._first_stop(text)
        if match is not None:
            index, self.stop_sequence = match
            self.text = text[:index]
            return self._emit(len(self.text))
        self.text = text
        safe = len(text)
        if text.endswith("\ufffd"):
            safe = len(text.rstrip("\ufffd"))
        safe = min(safe, len(text) - self._stop_prefix_length(text))
        return self._emit(safe)

    def flush(self) -> str:
        """The held-back text, at the end of decoding."""
        return self._emit(len(self.text))

    def _emit(self, upto: int) -> str:
        if upto <= self._emitted:
            return ""
        delta = self.text[self._emitted : upto]
        self._emitted = upto
        return delta

    def _first_stop(self, text: str) -> tuple[int, str] | None:
        found = [(text.find(s, max(0, self._emitted - len(s))), s) for s in self.stop]
        found = [(i, s) for i, s in found if i >= 0]
        return min(found) if found else None

    def _stop_prefix_length(self, text: str) -> int:
        """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
        longest = 0
        for stop in self.stop:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
