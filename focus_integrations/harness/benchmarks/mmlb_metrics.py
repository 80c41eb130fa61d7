"""MMLongBench's metrics, as the reference ports them (``eval/mmlongbench.py``, from MMLongBench ``utils.py``).

Each ``score_*`` takes the model's answer (reasoning already stripped) and the gold, and returns the score
the reference records: the max over the raw answer and the text after the task's answer prefix.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from typing import Any


def normalize(text: str) -> str:
    text = re.sub(r"\b(a|an|the)\b", " ", text.lower())
    return " ".join("".join(ch for ch in text if ch not in string.punctuation).split())


def _normalize_punc(text: str) -> str:
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text.lower()).split())


def f1(prediction: str, gold: str) -> float:
    pred, true = normalize(prediction).split(), normalize(gold).split()
    common = sum((Counter(pred) & Counter(true)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(true)
    return 2 * precision * recall / (precision + recall)


def _golds(golds: Any) -> list[str]:
    if isinstance(golds, str):
        return [golds]
    if golds and isinstance(golds[0], list):
        return [g for group in golds for g in group]
    return list(golds)


def sub_em(prediction: str, golds: Any) -> float:
    return float(max(normalize(str(g)) in normalize(prediction) for g in _golds(golds)))


def binary_label(text: str) -> int:
    text = _normalize_punc(text)
    match = re.search(r"\b(?:yes|no)\b(?!.*\b(?:yes|no)\b)", text, re.IGNORECASE | re.DOTALL)
    if match:
        return {"yes": 1, "no": 0}[match.group(0).lower()]
    return int(text.strip()) if text.strip().isdigit() else -1


def count_list(prediction: str) -> list[int]:
    prediction = _normalize_punc(prediction)
    for pattern in (r"\[[\d\s,]+\]", r"\[.*?\]"):
        found = re.findall(pattern, prediction, re.IGNORECASE | re.DOTALL)
        if found:
            try:
                return [int(x) for x in json.loads(found[-1]) if str(x).lstrip("-").isdigit()]
            except (json.JSONDecodeError, ValueError, TypeError):
                pass
    return [int(x) for x in re.findall(r"\d+", prediction)]


def choice_index(prediction: str) -> int:
    prediction = " ".join(prediction.split())
    for pattern in (r"answer is \(?([A-J])\)?", r"[aA]nswer:\s*([A-J])"):
        match = re.search(pattern, prediction)
        if match:
            return ord(match.group(1)) - ord("A")
    match = re.search(r"\b[A-J]\b(?!.*\b[A-J]\b)", prediction, re.DOTALL)
    return ord(match.group(0)) - ord("A") if match else -1


def class_number(prediction: str) -> int:
    prediction = " ".join(prediction.split())
    match = re.search(r"label:\s*(\d+)", prediction, re.IGNORECASE) or re.search(
        r"\b(\d+)\b(?!.*\b\d+\b)", prediction
    )
    if match:
        return int(match.group(1))
    numbers = re.findall(r"\d+", prediction)
    return int(numbers[0]) if numbers else -1


def parse_output(text: str, prefix: str) -> str | None:
    """The text after ``prefix`` (case-insensitive), else the whole text."""
    for pattern in (f"(?:{re.escape(prefix)})(.*)", r"(?:^)(.*)"):
        match = re.search(pattern, text, re.IGNORECASE | re.DOTALL)
        if match:
            return re.sub(f"^{re.escape(prefix)}", "", match.group(1).strip(), flags=re.IGNORECASE).strip()
    return None


# ------------------------------------------------------------------------------------------------ doc QA


def _clean(value: Any) -> str:
    s = str(value).lower().strip().replace(",", "")
    for suffix in (
        "kg",
        "meters",
        "acres",
        "minutes",
        "miles",
        "mile",
        "feet",
        "million",
        "thousand",
        "billion",
    ):
        s = re.sub(re.escape(suffix) + r"$", "", s).strip()
    for suffix in ("mm", "m"):
        s = re.sub(re.escape(suffix) + r"$", "", s).strip()
    return re.sub(r"^['\"]|['\"]$", "", s).strip().strip("$").strip("£").strip("%").strip()


_NEED_EXACT = (
    r"https://",
    r".*\.(py|ipynb)$",
    r"^page",
    r"^\d+(-\d+|\s\d+)?$",
    r"(a\.m\.|p\.m\.)",
    r"^\d{4}[-/\s]\d{1,2}[-/\s]\d{1,2}$",
    r"^\d{1,2}[-/\s]\d{1,2}[-/\s]\d{2,4}$",
    r"^\d{4}[-/\s]\d{1,2}$",
    r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$",
)


def _needs_exact(text: str) -> bool:
    return any(re.search(p, text) for p in _NEED_EXACT)


def _numbers(text: str) -> list[float]:
    out = []
    for number, _ in re.findall(r"(-?\d+(\.\d*)?|-?\.\d+)", text.replace(",", "")):
        try:
            value = float(number)
        except ValueError:
            continue
        if math.isfinite(value):
            out.append(value)
    return out


def _answer_type(value: Any) -> str:
    try:
        number = float(_clean(str(value)))
    except ValueError:
        return "String"
    return "Integer" if number == int(number) and "%" not in str(value) else "Float"


def doc_qa(gold: Any, prediction: str, answer_type: str) -> float:
    if answer_type == "Integer":
        target = int(float(_clean(gold)))
        return float(any(int(n) == target for n in _numbers(_clean(prediction)) if int(n) == n))
    if answer_type == "Float":
        target = float(_clean(gold))
        candidates = (target / 100, target, target * 100)
        return float(
            any(math.isclose(t, n, rel_tol=0.01) for n in _numbers(_clean(prediction)) for t in candidates)
        )
    if answer_type in ("String", "None"):
        return float(str(gold) in prediction) if _needs_exact(str(gold)) else f1(prediction, str(gold))
    if answer_type == "List":
        items = json.loads(gold) if isinstance(gold, str) else list(gold)
        is_text = [isinstance(i, str) and _answer_type(i) == "String" and not _needs_exact(i) for i in items]
        text_items = [i for i, t in zip(items, is_text) if t]
        effective = ([" ".join(text_items).strip()] if text_items else []) + [
            i for i, t in zip(items, is_text) if not t
        ]
        scores = [
            doc_qa(
                g,
                prediction,
                "Integer" if isinstance(g, int) else "Float" if isinstance(g, float) else _answer_type(g),
            )
            for g in effective
        ]
        return sum(scores) / len(effective)
    raise ValueError(f"unknown answer type {answer_type!r}")


def rouge_l(prediction: str, golds: Any) -> float:
    """ROUGE-Lsum F1 (max over golds; rouge-score with the stemmer, as the reference)."""
    from focus_integrations.errors import InvalidOptionError

    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise InvalidOptionError(
            "MMLongBench summarisation is scored with ROUGE: pip install 'focus-integrations[eval]'"
        ) from None
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    return max(scorer.score(target=g, prediction=prediction)["rougeLsum"].fmeasure for g in _golds(golds))
