"""Constrained decoding: llguidance and xgrammar side by side, in one run, on the same decode.

Three parts, each measured in this one process so the libraries share the machine's conditions:

1. **Per-step cost on the benchmark model** (~25M-parameter Qwen2.5-VL shape, random weights, FOCUS over N
   images): the median interval between consecutive decode steps (forward + combine + grammar mask + choose
   + advance) with no constraint, with the JSON schema through llguidance, and through xgrammar (the same
   engine, the constraint object swapped). Also the grammar's own share: time inside mask + advance per step,
   and the compile time at the start of a request. Repeats are interleaved (none, llguidance, xgrammar, none,
   ...) so drifting load hits all three alike. Both libraries spell JSON the same way (``", "``, ``": "``, no
   free whitespace), so their greedy outputs must be identical; the script checks it.
2. **Mask cost at a realistic vocabulary size**: the bench model's tokenizer has 265 entries (every byte plus
   specials), which flatters both libraries. A byte-level BPE with ``--vocab`` entries is trained offline on
   the Python standard library's sources, and both libraries mask the same JSON answer token by token.
3. **Tokenizer coverage**: the byte-level tiny tokenizers of all nine families and the bundled default model's
   word-level tokenizer (45 words plus punctuation: it cannot spell JSON). For each library: does it build,
   does a constrained JSON decode give valid JSON, and what happens on the default model (a clear error, or a
   mask that silently allows nothing).

    pip install llguidance xgrammar   # xgrammar's triton requirement is not needed on CPU: --no-deps works
    python benchmarks/bench_constrained.py [--n 2] [--repeats 5] [--threads 1] [--vocab 32000]

The clock is the process's CPU time with ``--threads 1`` by default (robust on a shared machine; equals the
elapsed time on an idle one); ``--clock wall`` for elapsed time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"enum": ["image 1", "image 2", "neither"]},
        "colors": {
            "type": "array",
            "items": {"type": "string", "minLength": 4, "maxLength": 8},
            "minItems": 4,
            "maxItems": 4,
        },
        "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
        "shape": {"type": "string", "maxLength": 16},
    },
    "required": ["answer", "colors", "confidence", "shape"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "comparison", "schema": SCHEMA, "strict": True},
}
ANSWER = {
    "answer": "image 2",
    "colors": ["crimson", "teal", "black", "yellow"],
    "confidence": 75,
    "shape": "circle",
}


# --------------------------------------------------------------------------------------------- xgrammar


class XgrammarConstraint:
    """The engine's constraint protocol (allowed / mask / advance / finished / satisfied) on xgrammar."""

    def __init__(self, compiled, vocab_size: int, response_format) -> None:
        import xgrammar as xgr

        self._matcher = xgr.GrammarMatcher(compiled)
        self._bitmask = xgr.allocate_token_bitmask(1, vocab_size)
        self.vocab_size = vocab_size
        self.response_format = response_format
        self._allowed = None

    def allowed(self, device=None):
        import numpy as np
        import torch

        if self._allowed is None:
            self._matcher.fill_next_token_bitmask(self._bitmask)
            bits = self._bitmask[0].numpy().view(np.uint8)
            self._allowed = torch.from_numpy(
                np.unpackbits(bits, bitorder="little")[: self.vocab_size].astype(bool)
            )
        return self._allowed if device is None else self._allowed.to(device)

    def mask(self, scores):
        return scores.masked_fill(~self.allowed(scores.device)[: scores.shape[-1]], float("-inf"))

    def advance(self, token: int) -> None:
        self._allowed = None
        if not self._matcher.accept_token(int(token)):
            raise RuntimeError(f"xgrammar rejected token {token}")

    @property
    def finished(self) -> bool:
        return bool(self._matcher.is_terminated())

    @property
    def satisfied(self) -> bool:
        return bool(self._matcher.is_terminated())


def xgrammar_compiler(tokenizer, vocab_size: int, eos_ids):
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(
        tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(eos_ids)
    )
    return info, xgr.GrammarCompiler(info, cache_enabled=False)


def xgrammar_compile(compiler, schema):
    return compiler.compile_json_schema(json.dumps(schema), any_whitespace=False, separators=(", ", ": "))


class Timed:
    """Wraps a constraint; adds up the time spent inside the grammar library (mask + advance)."""

    def __init__(self, inner, clock, totals: dict) -> None:
        self.inner, self.clock, self.totals = inner, clock, totals
        self.response_format = inner.response_format

    def _time(self, key, fn, *args):
        start = self.clock()
        out = fn(*args)
        self.totals[key] = self.totals.get(key, 0.0) + self.clock() - start
        return out

    def allowed(self, device=None):
        return self._time("mask", self.inner.allowed, device)

    def mask(self, scores):
        return self._time("mask", self.inner.mask, scores)

    def advance(self, token):
        self.totals["steps"] = self.totals.get("steps", 0) + 1
        return self._time("advance", self.inner.advance, token)

    @property
    def finished(self):
        return self.inner.finished

    @property
    def satisfied(self):
        return self.inner.satisfied


# --------------------------------------------------------------------------------------------- part 1


def per_step(n_images: int, repeats: int, clock) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from focus_integrations import FocusDecoder
    from focus_integrations.constraints import ResponseFormat, vocabulary_for
    from focus_integrations.testing import tiny_checkpoint

    torch.manual_seed(0)
    decoder = FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl", size="bench"), dtype="float32")
    vocab_size = decoder.model.get_output_embeddings().weight.shape[0]
    eos = {decoder.tokenizer.eos_token_id}
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(n_images)]
    ask = dict(images=images, prompt="Which image shows a red object? Answer as JSON.", seed=0)
    response_format = ResponseFormat.parse(RESPONSE_FORMAT)

    totals: dict[str, dict] = {"llguidance": {}, "xgrammar": {}}
    compile_s: dict[str, list[float]] = {"llguidance": [], "xgrammar": []}
    start = clock()
    vocabulary = vocabulary_for(decoder.tokenizer, vocab_size, eos)
    tokenizer_s = {"llguidance": clock() - start}
    start = clock()
    _, xgr_compiler = xgrammar_compiler(decoder.tokenizer, vocab_size, eos)
    tokenizer_s["xgrammar"] = clock() - start

    def make(backend: str):
        start = clock()
        if backend == "llguidance":
            inner = vocabulary.constraint(response_format)
        else:
            inner = XgrammarConstraint(xgrammar_compile(xgr_compiler, SCHEMA), vocab_size, response_format)
        compile_s[backend].append(clock() - start)
        return Timed(inner, clock, totals[backend])

    step_starts: list[float] = []

    def on_forward(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1:
            step_starts.append(clock())

    handle = decoder.model.register_forward_pre_hook(on_forward, with_kwargs=True)
    intervals: dict[str, list[float]] = {"none": [], "llguidance": [], "xgrammar": []}
    texts: dict[str, str] = {}
    n_tokens: dict[str, int] = {}
    backends = ("none", "llguidance", "xgrammar")
    for repeat in range(repeats + 1):  # the first round warms up
        for backend in backends:
            if backend == "none":
                decoder._constraint = lambda rf: None  # noqa: B023
                # As many steps as the constrained runs: random weights must not end early (end ids are per
                # request, so min_new_tokens does it); the constrained runs end when the grammar does.
                steps = n_tokens.get("llguidance", 48)
                options = {"max_new_tokens": steps, "min_new_tokens": steps}
            else:
                decoder._constraint = lambda rf, b=backend: make(b)  # noqa: B023
                options = {"response_format": RESPONSE_FORMAT, "max_new_tokens": 200}
            step_starts.clear()
            out = decoder.generate(**ask, **options)
            if repeat:
                intervals[backend] += [b - a for a, b in zip(step_starts, step_starts[1:])]
            texts[backend], n_tokens[backend] = out.text, len(out.token_ids)
    handle.remove()
    del decoder._constraint
    result = {
        "n": n_images,
        "tokens": n_tokens["llguidance"],
        "same_output": texts["llguidance"] == texts["xgrammar"],
        "valid": _valid(texts["llguidance"]) and _valid(texts["xgrammar"]),
        "params_m": sum(p.numel() for p in decoder.model.parameters()) / 1e6,
        "vocab": vocab_size,
    }
    for backend in backends:
        result[f"{backend}_step_ms"] = 1000 * statistics.median(intervals[backend])
    for backend in ("llguidance", "xgrammar"):
        t = totals[backend]
        result[f"{backend}_grammar_us"] = (
            1e6 * (t.get("mask", 0) + t.get("advance", 0)) / max(t.get("steps", 1), 1)
        )
        result[f"{backend}_compile_ms"] = 1000 * statistics.median(
            compile_s[backend][1:] or compile_s[backend]
        )
        result[f"{backend}_tokenizer_ms"] = 1000 * tokenizer_s[backend]
    return result


def _valid(text: str) -> bool:
    return _problem(text) is None


def _problem(text: str) -> str | None:
    """None for a valid answer; else what is wrong with it."""
    import jsonschema

    try:
        value = json.loads(text)
    except ValueError as err:
        if "control character" in str(err):
            return "not JSON: a raw control character inside a string (JSON forbids it)"
        return f"not JSON: {str(err)[:50]}"
    try:
        jsonschema.validate(value, SCHEMA)
    except jsonschema.ValidationError as err:
        return f"violates the schema: {err.message[:60]}"
    return None


# --------------------------------------------------------------------------------------------- part 2


def large_tokenizer(vocab: int):
    """A byte-level BPE with ``vocab`` entries, trained on the standard library's sources (cached)."""
    import sysconfig

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from focus_integrations.testing import tiny_cache_dir

    path = Path(tiny_cache_dir()) / f"bench-bpe-{vocab}.json"
    if not path.is_file():
        files = sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))[:3000]
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator((f.read_text(encoding="utf-8", errors="ignore") for f in files), trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        backend.save(str(path))
    return PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token="<|endoftext|>")


def mask_cost(vocab: int, repeats: int, clock) -> dict:
    from focus_integrations.constraints import ResponseFormat, vocabulary_for

    tokenizer = large_tokenizer(vocab)
    size = len(tokenizer)
    eos = {tokenizer.eos_token_id}
    answer_ids = tokenizer(json.dumps(ANSWER), add_special_tokens=False)["input_ids"]
    response_format = ResponseFormat.parse(RESPONSE_FORMAT)
    start = clock()
    vocabulary = vocabulary_for(tokenizer, size, eos)
    built = {"llguidance": clock() - start}
    start = clock()
    _, compiler = xgrammar_compiler(tokenizer, size, eos)
    built["xgrammar"] = clock() - start

    def run(backend: str) -> tuple[float, float]:
        start = clock()
        if backend == "llguidance":
            constraint = vocabulary.constraint(response_format)
        else:
            constraint = XgrammarConstraint(xgrammar_compile(compiler, SCHEMA), size, response_format)
        compiled = clock() - start
        start = clock()
        for token in answer_ids:
            assert constraint.allowed()[token], (backend, token)
            constraint.advance(token)
        assert constraint.allowed()[list(eos)[0]] or constraint.finished
        return compiled, (clock() - start) / len(answer_ids)

    runs: dict[str, list[tuple[float, float]]] = {"llguidance": [], "xgrammar": []}
    for _ in range(repeats + 1):
        for backend in runs:
            runs[backend].append(run(backend))
    out = {"vocab": size, "answer_tokens": len(answer_ids)}
    for backend, values in runs.items():
        out[f"{backend}_tokenizer_ms"] = 1000 * built[backend]
        out[f"{backend}_compile_ms"] = 1000 * statistics.median(v[0] for v in values[1:])
        out[f"{backend}_step_us"] = 1e6 * statistics.median(v[1] for v in values[1:])
    return out


# --------------------------------------------------------------------------------------------- part 3


def coverage() -> list[dict]:
    import numpy as np
    from PIL import Image

    from focus_integrations import FocusDecoder, default_model_path
    from focus_integrations.constraints import ResponseFormat
    from focus_integrations.errors import ConstraintError
    from focus_integrations.testing import FAMILIES, tiny_checkpoint

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(2)]
    response_format = ResponseFormat.parse(RESPONSE_FORMAT)
    rows = []
    for family in (*FAMILIES, "default model"):
        path = default_model_path() if family == "default model" else tiny_checkpoint(family)
        decoder = FocusDecoder.from_pretrained(path)
        vocab_size = decoder.model.get_output_embeddings().weight.shape[0]
        row = {
            "family": family,
            "tokenizer": _tokenizer_kind(decoder.tokenizer),
            "vocab": len(decoder.tokenizer),
        }
        for backend in ("llguidance", "xgrammar"):
            try:
                if backend == "llguidance":
                    make = decoder._constraint
                else:
                    _, compiler = xgrammar_compiler(decoder.tokenizer, vocab_size, decoder.eos_token_ids)
                    compiled = xgrammar_compile(compiler, SCHEMA)

                    def make(rf, compiled=compiled, vocab_size=vocab_size):
                        return XgrammarConstraint(compiled, vocab_size, rf)

                    first = make(response_format).allowed()
                    if not first.any():
                        row[backend] = "builds, but its first mask allows no token (silent: nothing says why)"
                        continue
                decoder._constraint = make
                out = decoder.generate(
                    images=images,
                    prompt="Describe as JSON.",
                    response_format=RESPONSE_FORMAT,
                    max_new_tokens=200,
                )
                problem = _problem(out.text)
                row[backend] = (
                    "valid JSON" if problem is None else f"INVALID ({problem}): `{out.text[:36]!r}`"
                )
            except ConstraintError as err:
                row[backend] = f"clear error: {type(err).__name__}"
            except Exception as err:  # noqa: BLE001 - the table records whatever a library does
                row[backend] = f"{type(err).__name__}: {str(err)[:60]}"
            finally:
                decoder.__dict__.pop("_constraint", None)
        rows.append(row)
    return rows


def _tokenizer_kind(tokenizer) -> str:
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["type"]
    return {"BPE": "byte-level BPE", "WordLevel": "word-level"}.get(model, model)


# --------------------------------------------------------------------------------------------- report


def machine() -> str:
    import torch

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads (torch {torch.__version__})"


def versions() -> str:
    from importlib.metadata import version

    return f"llguidance {version('llguidance')}, xgrammar {version('xgrammar')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2, help="images (FOCUS decodes N+1 rows)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--vocab", type=int, default=32000, help="size of the trained BPE for part 2")
    parser.add_argument("--markdown", default=None, help="also write the tables to this file")
    parser.add_argument("--coverage-only", action="store_true", help="only part 3 (quick)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    if args.coverage_only:
        for row in coverage():
            print(
                f"| {row['family']} | {row['tokenizer']} | {row['vocab']} | {row['llguidance']} | {row['xgrammar']} |"
            )
        return
    step = per_step(args.n, args.repeats, clock)
    print("part 1:", json.dumps(step), file=sys.stderr)
    mask = mask_cost(args.vocab, args.repeats, clock)
    print("part 2:", json.dumps(mask), file=sys.stderr)
    cover = coverage()

    base = step["none_step_ms"]
    lines = [
        f"Machine: {machine()}; {versions()}; {args.clock} clock; repeats interleaved, {args.repeats} per backend.",
        "",
        f"**Per decode step, benchmark model** ({step['params_m']:.1f}M parameters, Qwen2.5-VL shape, random "
        f"weights, vocabulary {step['vocab']}; FOCUS over N={step['n']} images = {step['n'] + 1} rows; "
        f"{step['tokens']} constrained tokens per answer; median step interval). Same greedy output from both "
        f"libraries: {'yes' if step['same_output'] else 'NO'}; outputs validate: {'yes' if step['valid'] else 'NO'}.",
        "",
        "| constraint | per step (ms) | vs unconstrained | grammar work per step (us) | compile per request (ms) | tokenizer setup, once (ms) |",
        "|---|---|---|---|---|---|",
        f"| none | {base:.2f} | 1.00x | - | - | - |",
    ]
    for backend in ("llguidance", "xgrammar"):
        lines.append(
            f"| JSON schema, {backend} | {step[f'{backend}_step_ms']:.2f} | {step[f'{backend}_step_ms'] / base:.3f}x | "
            f"{step[f'{backend}_grammar_us']:.0f} | {step[f'{backend}_compile_ms']:.2f} | {step[f'{backend}_tokenizer_ms']:.1f} |"
        )
    lines += [
        "",
        f"**Grammar work alone at a realistic vocabulary** (byte-level BPE with {mask['vocab']} entries trained on the "
        f"Python standard library; the same JSON answer, {mask['answer_tokens']} tokens, masked token by token; no model).",
        "",
        "| library | mask + advance per token (us) | compile per request (ms) | tokenizer setup, once (ms) |",
        "|---|---|---|---|",
    ]
    for backend in ("llguidance", "xgrammar"):
        lines.append(
            f"| {backend} | {mask[f'{backend}_step_us']:.0f} | {mask[f'{backend}_compile_ms']:.2f} | {mask[f'{backend}_tokenizer_ms']:.0f} |"
        )
    ratio = mask["xgrammar_step_us"] / max(mask["llguidance_step_us"], 1e-9)
    lines += [
        "",
        f"xgrammar / llguidance per token at {mask['vocab']} entries: {ratio:.2f}x; on the benchmark model: "
        f"{step['xgrammar_grammar_us'] / max(step['llguidance_grammar_us'], 1e-9):.2f}x.",
        "",
        "**Tokenizer coverage** (a constrained JSON decode with each library; random weights).",
        "",
        "| checkpoint | tokenizer | vocabulary | llguidance | xgrammar |",
        "|---|---|---|---|---|",
    ]
    for row in cover:
        lines.append(
            f"| {row['family']} | {row['tokenizer']} | {row['vocab']} | {row['llguidance']} | {row['xgrammar']} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")


if __name__ == "__main__":
    main()
