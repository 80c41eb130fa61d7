"""Answer parsing, following the FOCUS reference runners.

- Winoground A/B: lowercase, strip "," and ".", first ``\\b([ab])\\b``; no match reads as "a" (the runner's
  fallback, kept so scores compare with the paper's).
- Multiple choice (Mantis-Eval / MuirBench runners): keep the text after "final answer:", "the answer is",
  "answer:" or "prediction:" when present, strip "," and ".", first option letter. The runners' regex
  ``\\(?([abcd])\\)?`` has no word boundaries, so it reads the "c" of "correct"; here the letter must stand
  alone (identical on bare answers such as "B" or "(B) red"). No match is wrong (the runners' fallback).
- Open answers (the Mantis short-answer runner's cue phrases): the earliest word of the allowed vocabulary in
  the text after the cue; "none", "no shape", "nothing", "cannot tell", "noise" and the like read as
  ``none``; "grey" reads as gray and "square" as rectangle. Nothing recognisable reads as ``None`` (wrong, never a leak).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from focus_integrations.lab.prompts import NONE_ANSWER, OPTION_LETTERS

_CUES = ("final answer:", "the answer is", "answer:", "prediction:")
# Other names real models use for easy-vqa's values.
ALIASES = {"grey": "gray", "square": "rectangle"}
_NONE_PHRASES = (
    "none",
    "no shape",
    "nothing",
    "cannot tell",
    "can't tell",
    "cannot determine",
    "can't determine",
    "not visible",
    "noise",
    "no visible",
)


def _after_cue(text: str) -> str:
    lowered = text.lower()
    for cue in _CUES:
        at = lowered.rfind(cue)
        if at >= 0:
            return lowered[at + len(cue) :]
    return lowered


def _clean(text: str) -> str:
    return text.replace(",", " ").replace(".", " ")


def parse_ab(text: str) -> str:
    """ "a" or "b" (Winoground runner; falls back to "a")."""
    match = re.search(r"\b([ab])\b", _clean(text.lower()))
    return match.group(1) if match else "a"


def parse_choice(text: str, letters: str = OPTION_LETTERS) -> str | None:
    """The chosen option letter (lowercase), or None when no option letter stands alone in the answer."""
    allowed = "".join(sorted({c.lower() for c in letters}))
    match = re.search(rf"\(?\b([{allowed}])\b\)?", _clean(_after_cue(text)))
    return match.group(1) if match else None


def parse_open(text: str, vocabulary: Iterable[str]) -> str | None:
    """The earliest answer word of ``vocabulary`` (or ``none``) in ``text``; None if there is none."""
    body = _clean(_after_cue(text))
    best: tuple[int, str] | None = None
    words = {word.lower(): word for word in vocabulary}
    words |= {alias: name for alias, name in ALIASES.items() if name in words.values()}
    for spelled, word in words.items():
        match = re.search(rf"\b{re.escape(spelled)}s?\b", body)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), word)
    for phrase in _NONE_PHRASES:
        match = re.search(rf"\b{re.escape(phrase)}\b", body)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), NONE_ANSWER)
    return best[1] if best else None
