"""Answer parsers: the reference runners' exact rules (quirks included) and the strict ones.

Every parser is a small frozen object with ``parse(text) -> str | None`` (lowercase answer; ``None`` = nothing
read, which is wrong). Reasoning text (``<think>...</think>`` and similar) is stripped before any parser runs,
for every model whose output has it (:func:`strip_reasoning`), not for one registry name as the reference does.

Reference rules (``yejipark-m/FOCUS`` @ 8e04e89, ``eval/*.py``):

- Winoground / Vinoground: ``lower().strip()``, drop ``,`` and ``.``, first ``\\b([ab])\\b``; no match reads as
  ``"a"`` (a free hit on every A-gold query). VisMin: same regex, fallback ``"ab"`` (always wrong).
- Mantis-Eval / MuirBench: (Mantis only) keep the text after the first of ``final answer:`` / ``the answer is`` /
  ``answer:`` / ``prediction:`` (priority in that order), drop ``,`` ``.``, first ``\\(?([abcd])\\)?``: not
  word-bounded (``"based"`` reads as ``a``) and blind to option E; fallback ``"abcd"`` (always wrong).
- MIRB: the whole lowercased answer without ``,`` and ``.`` must equal the gold.

Strict rules (``--protocol strict``): an option letter counts only when it stands as a letter, ``(B)``, ``B.``,
``B)``, ``B:``, ``answer is B``, ``Answer: B``, ``option B`` or a bare ``B``; every option letter of the item
can be read (A..J); nothing read is wrong (no fallback).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Markers after which the final answer of a reasoning model starts (the text before is its reasoning).
_REASONING_ENDS = ("</think>", "◁/think▷", "</reasoning>", "<|end_of_thought|>")
_REASONING_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)

MANTIS_CUES = ("final answer:", "the answer is", "answer:", "prediction:")


def strip_reasoning(text: str) -> str:
    """The answer part of ``text``: reasoning blocks removed; after the last end-of-reasoning marker if any."""
    text = _REASONING_BLOCK.sub("", text)
    for marker in _REASONING_ENDS:
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    return text.strip()


def after_first_cue(text: str, cues: tuple[str, ...] = MANTIS_CUES) -> str:
    """The Mantis runner's ``parse_answer``: the text after the first cue (in priority order) that occurs."""
    lowered = text.lower()
    for cue in cues:
        if cue in lowered:
            return text[lowered.index(cue) + len(cue) :].strip()
    return text


@dataclass(frozen=True)
class ReferenceLetter:
    """A reference runner's letter rule: optional cue cut, lowercase, drop ``,.``, ``pattern``, else ``fallback``."""

    pattern: str
    fallback: str
    cues: tuple[str, ...] = ()

    def parse(self, text: str) -> str | None:
        prediction = text.lower().strip()
        if self.cues:
            prediction = after_first_cue(prediction, self.cues)
        prediction = prediction.replace(",", "").replace(".", "")
        match = re.search(self.pattern, prediction)
        return match.group(1) if match else self.fallback


@dataclass(frozen=True)
class ReferenceExact:
    """MIRB's rule: the whole lowercased answer without ``,`` and ``.``."""

    def parse(self, text: str) -> str | None:
        return text.lower().strip().replace(",", "").replace(".", "")


@dataclass(frozen=True)
class StrictLetter:
    """An option letter that stands as a letter (see the module docstring); ``None`` when there is none.

    ``words`` maps answer words to letters (VisMin's official image prompt answers ``First`` / ``Second``).
    """

    letters: str = "abcdefghij"
    words: tuple[tuple[str, str], ...] = ()

    def parse(self, text: str) -> str | None:
        body = after_first_cue(text).strip()
        up = "".join(sorted({c.upper() for c in self.letters}))
        for word, letter in self.words:
            if re.fullmatch(rf"\W*{word}\W*", body, re.IGNORECASE):
                return letter
        patterns = (
            rf"^\W*\(?([{up}])\)?\W*$",  # a bare letter: "B", "(B)", "B."
            rf"\(([{up}])\)",  # "(B) ..."
            rf"(?i:answer is|answer:|option|choice)\s*\(?([{up}])\b",
            rf"\b([{up}])[.):,](?!\w)",  # "B. red", "B)", "B:"
            rf"\b([{up}])\b(?![ \t]+[a-z])",  # an uppercase letter not starting a sentence ("A dog ...")
        )
        for pattern in patterns:
            match = re.search(pattern, body, re.MULTILINE)
            if match:
                return match.group(1).lower()
        if self.words:
            hits = [
                (m.start(), letter)
                for word, letter in self.words
                for m in [re.search(rf"\b{word}\b", body, re.IGNORECASE)]
                if m
            ]
            if hits:
                return min(hits)[1]
        return None


@dataclass(frozen=True)
class StrictExact:
    """An open answer: the text after an answer cue, lowercased, punctuation and articles removed."""

    def parse(self, text: str) -> str | None:
        body = after_first_cue(text).strip().splitlines()
        return normalize_answer(body[0]) if body else None


def normalize_answer(text: str) -> str:
    """Lowercase, punctuation and the articles a/an/the removed, spaces collapsed (SQuAD-style)."""
    text = re.sub(r"[^\w\s]", " ", text.lower())
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def reference_gold(answer: str) -> str:
    """The reference runners' gold: lowercased, stripped, parentheses removed (``"(A)"`` -> ``"a"``)."""
    return answer.lower().strip().replace("(", "").replace(")", "")
