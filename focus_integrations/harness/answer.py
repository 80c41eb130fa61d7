"""One query -> one record: ask the engine (generate, or score the choices), strip reasoning, parse, grade."""

from __future__ import annotations

import math
import time
import zlib
from typing import Any
from typing import Protocol as TypingProtocol

from focus_integrations.harness.parsing import strip_reasoning
from focus_integrations.harness.spec import Benchmark, Protocol, Query

OPTION_LETTERS = "abcdefghij"
_NOISE_OPTIONS = ("noise", "noise_scale", "noise_severity", "fresh_noise")


class Model(TypingProtocol):
    """What the harness needs of a model: ``FocusDecoder``'s ``generate`` and ``score``."""

    def generate(self, images: Any = None, prompt: Any = None, **kwargs: Any) -> Any: ...

    def score(self, images: Any = None, prompt: Any = None, **kwargs: Any) -> list[float]: ...


def query_seed(seed: int, query: Query) -> int:
    """The seed of one question: the same in every mode (same noise draws), shard and resumed run."""
    return zlib.crc32(f"{seed}:{query.query_id}".encode())


def _inputs(query: Query, protocol: Protocol) -> dict[str, Any]:
    if protocol.image_placement == "interleaved" and query.content is not None:
        messages = [{"role": "system", "content": query.system}] if query.system else []
        messages.append({"role": "user", "content": query.content})
        return {"messages": messages}
    return {"images": query.images, "prompt": query.prompt, "system": query.system}


def ask(
    model: Model,
    benchmark: Benchmark,
    protocol: Protocol,
    reading: str,
    query: Query,
    *,
    mode: str,
    alpha: float,
    seed: int,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Run ``query`` once and return its record fields (without split/mode/alpha)."""
    engine: dict[str, Any] = {"mode": mode, "seed": query_seed(seed, query)}
    if mode != "vanilla":
        engine["alpha"] = alpha
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if reading in ("score", "probs"):
        noise = {k: v for k, v in options.items() if k in _NOISE_OPTIONS}
        per_mode = dict(protocol.mode_generation.get(mode, {}))  # image handling, FOCUS at N = 1
        logps = model.score(
            **_inputs(query, protocol), candidates=list(query.choices), **engine, **noise, **per_mode
        )
        best = max(range(len(logps)), key=lambda i: logps[i])
        raw = query.choices[best]
        parsed: str | None = OPTION_LETTERS[best]
        extra["logprobs"] = [round(v, 6) for v in logps]
        if reading == "probs":  # softmax over the vocabulary, renormalised over the choices (the reference)
            top = max(logps)
            weights = [math.exp(v - top) for v in logps]
            extra["probs"] = [round(w / sum(weights), 6) for w in weights]
        correct = float(parsed == query.gold)
    else:
        generation = protocol.engine_options(mode) | options | engine
        output = model.generate(**_inputs(query, protocol), **generation)
        raw = output.text
        answer = strip_reasoning(raw)
        parser = query.parser or protocol.parser
        parsed = parser.parse(answer)
        correct = float(query.grade(parsed, answer)) if query.grade else float(parsed == query.gold)
        extra["output_tokens"] = output.usage.output_tokens
    return {
        "id": query.query_id,
        "example": query.example_id,
        "query": query.key,
        "n_images": len(query.images),
        "raw": raw,
        "parsed": parsed,
        "gold": query.gold,
        "correct": correct,
        "breakdown": query.breakdown,
        "latency_s": round(time.perf_counter() - started, 4),
    } | extra
