"""Constrained decoding: a grammar (JSON schema, regex, choice, tool call) masks the COMBINED logits.

``DecodingOptions(response_format=...)`` names what the answer must look like, in OpenAI's shapes plus three
of our own::

    {"type": "json_schema", "json_schema": {"name": "...", "schema": {...}, "strict": True}}
    {"type": "json_object"}                                   # any JSON object
    {"type": "regex", "pattern": "[0-9]{3}-[a-z]+"}           # Rust regex syntax, matched in full
    {"type": "choice", "choices": ["red", "green", "blue"]}   # exactly one of these strings
    {"type": "tool_call", "tools": [<OpenAI tool dicts>], "suffix": "\\n</tool_call>"}

``tool_call`` is one call ``{"name": <one of the tools>, "arguments": <that tool's parameters>}`` followed by
``suffix`` (the template's closing markup, if any); the adapters build it for forced tool calls. With
``"answer": <a json_schema or json_object response_format>`` the model may instead give that JSON answer
(``tool_choice`` auto with a ``response_format``: call a tool or answer in the schema); the call then starts
with ``prefix`` (the template's opening markup), which the grammar spells, so the two can be told apart.

The grammar is compiled by `llguidance <https://github.com/guidance-ai/llguidance>`_ (chosen over xgrammar by
measurement: ``benchmarks/bench_constrained.py``, docs/benchmarks.md). Per request, a :class:`GrammarConstraint`
masks the combined vector before the sampling processors and advances with the chosen token; once the grammar
is complete, decoding stops. JSON is spelled the way ``json.dumps`` spells it (``", "`` and ``": "``, no other
whitespace): it is what chat templates and real checkpoints write, and whitespace cannot eat the token budget.
``strict: true`` closes every object that does not say ``additionalProperties`` itself (OpenAI's strict mode
semantics); without it, the schema is used exactly as written.

Errors: a bad ``response_format`` is an ``InvalidOptionError``; a schema or pattern the library cannot compile
is an ``UnsupportedSchemaError``; a tokenizer that cannot spell the output (the default model's word-level
vocabulary has no ``{`` or ``"``) is an ``UnsupportedTokenizerError``. Nothing is ever decoded unconstrained in
their place.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from focus_integrations.errors import InvalidOptionError, UnsupportedSchemaError, UnsupportedTokenizerError

if (
    TYPE_CHECKING
):  # options.py imports this module, and the `focus` command imports options: no torch at start
    import torch

__all__ = [
    "RESPONSE_FORMAT_TYPES",
    "ResponseFormat",
    "GrammarConstraint",
    "GrammarVocabulary",
    "vocabulary_for",
]

ResponseFormatType = Literal["json_schema", "json_object", "regex", "choice", "tool_call"]
RESPONSE_FORMAT_TYPES: tuple[str, ...] = ("json_schema", "json_object", "regex", "choice", "tool_call")

# JSON as json.dumps writes it: what templates render and models are trained on; no free whitespace.
JSON_STYLE: dict[str, Any] = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass(frozen=True)
class ResponseFormat:
    """A validated, hashable ``response_format``. Build it with :meth:`parse`; ``to_dict`` gives it back."""

    type: ResponseFormatType
    schema_json: str | None = None  # json_schema: the schema; tool_call: the tools (canonical JSON)
    name: str | None = None
    strict: bool | None = None
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    suffix: str = ""
    prefix: str = ""  # tool_call with an answer: the call's opening markup
    answer_json: str | None = None  # tool_call: the schema of the JSON answer allowed instead of a call

    @classmethod
    def parse(cls, value: Any) -> ResponseFormat | None:
        """``None`` (unconstrained), a ``ResponseFormat``, or a dict in one of the documented shapes."""
        if value is None or isinstance(value, ResponseFormat):
            return value
        if not isinstance(value, Mapping):
            raise InvalidOptionError(
                f"response_format must be a dict such as {{'type': 'json_object'}}, got {type(value).__name__}"
            )
        kind = value.get("type")
        if kind == "text":  # OpenAI's explicit "no constraint"
            return None
        if kind == "json_object":
            return cls("json_object")
        if kind == "json_schema":
            spec = value.get("json_schema")
            if spec is None and "schema" in value:  # the flat shape some clients send
                spec = value
            if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
                raise InvalidOptionError(
                    "response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}"
                )
            strict = spec.get("strict")
            if strict is not None and not isinstance(strict, bool):
                raise InvalidOptionError(f"json_schema.strict must be true, false or null, got {strict!r}")
            name = spec.get("name")
            return cls(
                "json_schema",
                schema_json=_canonical(spec["schema"], "json_schema.schema"),
                name=name if isinstance(name, str) else None,
                strict=strict,
            )
        if kind == "regex":
            pattern = value.get("pattern")
            if not isinstance(pattern, str) or not pattern:
                raise InvalidOptionError("response_format regex needs a non-empty 'pattern' string")
            return cls("regex", pattern=pattern)
        if kind == "choice":
            choices = value.get("choices")
            if (
                isinstance(choices, (str, bytes))
                or not isinstance(choices, Sequence)
                or not choices
                or not all(isinstance(c, str) and c for c in choices)
            ):
                raise InvalidOptionError(
                    "response_format choice needs 'choices': a list of non-empty strings"
                )
            return cls("choice", choices=tuple(dict.fromkeys(choices)))
        if kind == "tool_call":
            tools = [_tool_function(tool, index) for index, tool in enumerate(value.get("tools") or [])]
            if not tools:
                raise InvalidOptionError("response_format tool_call needs 'tools': a non-empty list")
            names = [tool["name"] for tool in tools]
            if len(set(names)) != len(names):
                raise InvalidOptionError(f"tool names must be unique, got {names}")
            suffix, prefix = value.get("suffix", ""), value.get("prefix", "")
            if not isinstance(suffix, str) or not isinstance(prefix, str):
                raise InvalidOptionError("response_format tool_call 'prefix' and 'suffix' must be strings")
            answer = value.get("answer")
            answer_json = None
            if answer is not None:
                alternative = cls.parse(answer)
                if alternative is None or alternative.type not in ("json_schema", "json_object"):
                    raise InvalidOptionError(
                        "response_format tool_call 'answer' must be a json_schema or json_object response_format"
                    )
                schema = alternative.schema or {}
                answer_json = _canonical(_closed_objects(schema) if alternative.strict else schema, "answer")
            return cls(
                "tool_call",
                schema_json=_canonical(tools, "tools"),
                suffix=suffix,
                prefix=prefix,
                answer_json=answer_json,
            )
        raise InvalidOptionError(
            f"unknown response_format type {kind!r}; use one of text, {', '.join(RESPONSE_FORMAT_TYPES)}"
        )

    @property
    def schema(self) -> dict[str, Any] | None:
        """The JSON schema the answer must validate against (``None`` for regex and choice)."""
        if self.type == "json_object":
            return {"type": "object"}
        if self.type == "json_schema":
            return json.loads(self.schema_json or "{}")
        if self.type == "tool_call":
            call = tool_call_schema(json.loads(self.schema_json or "[]"))
            return call if self.answer_json is None else {"anyOf": [call, json.loads(self.answer_json)]}
        return None

    def to_dict(self) -> dict[str, Any]:
        if self.type == "json_schema":
            spec: dict[str, Any] = {"name": self.name or "response", "schema": self.schema}
            if self.strict is not None:
                spec["strict"] = self.strict
            return {"type": "json_schema", "json_schema": spec}
        if self.type == "regex":
            return {"type": "regex", "pattern": self.pattern}
        if self.type == "choice":
            return {"type": "choice", "choices": list(self.choices)}
        if self.type == "tool_call":
            tools = [{"type": "function", "function": f} for f in json.loads(self.schema_json or "[]")]
            out: dict[str, Any] = {"type": "tool_call", "tools": tools, "suffix": self.suffix}
            if self.prefix:
                out["prefix"] = self.prefix
            if self.answer_json is not None:
                answer = {"name": "answer", "schema": json.loads(self.answer_json)}
                out["answer"] = {"type": "json_schema", "json_schema": answer}
            return out
        return {"type": self.type}


def _canonical(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=False, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidOptionError(f"response_format {what} is not JSON-serialisable: {err}") from None


def _tool_function(tool: Any, index: int) -> dict[str, Any]:
    """An OpenAI tool dict (``{"type": "function", "function": {...}}``) or its inner function dict."""
    function = tool.get("function") if isinstance(tool, Mapping) and "function" in tool else tool
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str) or not function["name"]:
        raise InvalidOptionError(f"tool {index} must be {{'type': 'function', 'function': {{'name': ...}}}}")
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping):
        raise InvalidOptionError(f"tool {function['name']!r}: parameters must be a JSON schema object")
    # OpenAI's per-function strict flag: the arguments object is closed as with a strict json_schema.
    parameters = _closed_objects(dict(parameters)) if function.get("strict") else dict(parameters)
    return {"name": function["name"], "parameters": parameters}


def tool_call_schema(functions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """JSON schema of one call ``{"name": ..., "arguments": ...}`` to any of ``functions``."""
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": f["name"]}, "arguments": f["parameters"]},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for f in functions
    ]
    return calls[0] if len(calls) == 1 else {"anyOf": calls}


def _closed_objects(schema: Any) -> Any:
    """strict=true: every object schema that does not say ``additionalProperties`` gets ``false``."""
    if isinstance(schema, list):
        return [_closed_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _closed_objects(value) for key, value in schema.items()}
    is_object = out.get("type") == "object" or "properties" in out
    if is_object and "additionalProperties" not in out and "patternProperties" not in out:
        out["additionalProperties"] = False
    return out


# --------------------------------------------------------------------------------------------- grammars


def grammar_text(response_format: ResponseFormat, vocabulary: GrammarVocabulary) -> str:
    """The llguidance grammar for ``response_format`` (UnsupportedSchemaError if it cannot be built)."""
    from llguidance import LLMatcher

    kind = response_format.type
    if kind in ("json_schema", "json_object"):
        schema = response_format.schema or {}
        if response_format.strict:
            schema = _closed_objects(schema)
        return _json_grammar(schema)
    if kind == "regex":
        return LLMatcher.grammar_from_regex(response_format.pattern or "")
    if kind == "choice":
        return LLMatcher.grammar_from_lark(
            "start: " + " | ".join(json.dumps(c, ensure_ascii=False) for c in response_format.choices)
        )
    functions = json.loads(response_format.schema_json or "[]")
    call = json.dumps(dict(tool_call_schema(functions), **{"x-guidance": JSON_STYLE}), ensure_ascii=False)
    block = " ".join(
        part
        for part in (
            vocabulary.lark_literal(response_format.prefix),
            "call",
            vocabulary.lark_literal(response_format.suffix),
        )
        if part
    )
    grammar = f"start: {block}\ncall: %json {call}"
    if response_format.answer_json is not None:  # a call, or the JSON answer instead
        answer = dict(json.loads(response_format.answer_json), **{"x-guidance": JSON_STYLE})
        grammar = (
            f"start: block | answer\nblock: {block}\ncall: %json {call}\nanswer: %json {json.dumps(answer)}"
        )
    try:
        return LLMatcher.grammar_from_lark(grammar)
    except ValueError as err:
        raise UnsupportedSchemaError(f"the tool call grammar could not be compiled: {err}") from None


def _json_grammar(schema: dict[str, Any]) -> str:
    from llguidance import LLMatcher

    try:
        return LLMatcher.grammar_from_json_schema(schema, defaults=JSON_STYLE)  # type: ignore[arg-type]
    except ValueError as err:
        raise UnsupportedSchemaError(f"the JSON schema could not be compiled: {err}") from None


# --------------------------------------------------------------------------------------------- vocabulary


class GrammarVocabulary:
    """A tokenizer as the grammar library sees it; built once per decoder (about 1 s for a 150k vocabulary).

    ``vocab_size`` is the model's logits width (it may exceed the tokenizer: padded embeddings are never
    allowed). ``eos_token_ids`` end the answer once the grammar is complete.
    """

    PROBE = '{"name": "a b", "n": [1, -2.5e3, true, null]}'

    def __init__(
        self, tokenizer: Any, vocab_size: int, eos_token_ids: Iterable[int], model_name: str = ""
    ) -> None:
        import llguidance.hf

        self.vocab_size = int(vocab_size)
        self.eos_token_ids = sorted(set(eos_token_ids))
        where = f" of {model_name}" if model_name else ""
        try:
            self.tokenizer = llguidance.hf.from_tokenizer(
                tokenizer, n_vocab=self.vocab_size, eos_token=self.eos_token_ids or None
            )
        except (ValueError, TypeError) as err:
            raise UnsupportedTokenizerError(
                f"constrained decoding cannot use the tokenizer{where} ({type(tokenizer).__name__}): {err}. "
                "Grammar-constrained output needs a byte-level or SentencePiece tokenizer that can spell any "
                "text, as every real checkpoint's has"
            ) from None
        # The library and the tokenizer must agree on how JSON is spelled, and the tokenizer must be able to
        # spell it at all (a word-level vocabulary maps "{" to <unk>).
        ids = tokenizer(self.PROBE, add_special_tokens=False)["input_ids"]
        decoded = tokenizer.decode(ids)
        if decoded != self.PROBE or self.tokenizer.decode_str(ids) != self.PROBE:
            raise UnsupportedTokenizerError(
                f"constrained decoding cannot use the tokenizer{where}: it cannot spell JSON "
                f"({self.PROBE!r} round-trips to {decoded!r}). Ask for plain text instead"
            )
        self._added = _added_tokens(tokenizer)

    def lark_literal(self, text: str) -> str:
        """``text`` as a Lark sequence; pieces that are one added token (``</tool_call>``) use that token."""
        if not text:
            return ""
        parts: list[str] = []
        rest = text
        while rest:
            match = next(((content, i) for content, i in self._added if rest.startswith(content)), None)
            if match is not None:
                parts.append(f"<[{match[1]}]>")
                rest = rest[len(match[0]) :]
                continue
            cut = min((i for i in (rest.find(c) for c, _ in self._added) if i > 0), default=len(rest))
            parts.append(json.dumps(rest[:cut], ensure_ascii=False))
            rest = rest[cut:]
        return " ".join(parts)

    def constraint(self, response_format: ResponseFormat) -> GrammarConstraint:
        """A fresh per-request constraint (UnsupportedSchemaError if the grammar does not compile)."""
        from llguidance import LLMatcher

        grammar = grammar_text(response_format, self)
        matcher = LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise UnsupportedSchemaError(
                f"the {response_format.type} constraint could not be compiled: {_first_line(matcher.get_error())}"
            )
        return GrammarConstraint(matcher, self.vocab_size, response_format)


def _added_tokens(tokenizer: Any) -> list[tuple[str, int]]:
    """Added tokens (markup such as ``<tool_call>``), longest first."""
    added = getattr(tokenizer, "get_added_vocab", lambda: {})()
    return sorted(((content, int(i)) for content, i in added.items() if content), key=lambda x: -len(x[0]))


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "unknown error"


_VOCABULARIES: weakref.WeakKeyDictionary[Any, GrammarVocabulary | Exception] = weakref.WeakKeyDictionary()
_VOCABULARIES_LOCK = threading.Lock()


def vocabulary_for(
    tokenizer: Any, vocab_size: int, eos_token_ids: Iterable[int], model_name: str = ""
) -> GrammarVocabulary:
    """The (cached) vocabulary of a tokenizer; an unsupported one raises the same error every time."""
    eos = tuple(sorted(set(eos_token_ids)))
    with _VOCABULARIES_LOCK:
        cached = _VOCABULARIES.get(tokenizer)
        if isinstance(cached, GrammarVocabulary) and (cached.vocab_size, tuple(cached.eos_token_ids)) == (
            vocab_size,
            eos,
        ):
            return cached
        if isinstance(cached, Exception):
            raise cached
        try:
            built = GrammarVocabulary(tokenizer, vocab_size, eos, model_name)
        except UnsupportedTokenizerError as err:
            _VOCABULARIES[tokenizer] = err
            raise
        _VOCABULARIES[tokenizer] = built
        return built


# --------------------------------------------------------------------------------------------- per request


class GrammarConstraint:
    """One request's grammar state: which tokens may come next (:meth:`allowed`), advanced by :meth:`advance`.

    Not thread-safe and not reusable: one per request, like a transformers logits processor with state.
    """

    def __init__(self, matcher: Any, vocab_size: int, response_format: ResponseFormat) -> None:
        self._matcher = matcher
        self.vocab_size = vocab_size
        self.response_format = response_format
        self._allowed: torch.Tensor | None = None

    def allowed(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Bool ``(vocab,)``: the tokens the grammar accepts next (EOS once it is complete)."""
        if self._allowed is None:
            bits = np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8)
            mask = np.unpackbits(bits, bitorder="little")[: self.vocab_size].astype(bool)
            import torch

            self._allowed = torch.from_numpy(mask)
        return self._allowed.to(device) if device is not None else self._allowed

    def mask(self, scores: torch.Tensor) -> torch.Tensor:
        """``scores`` (..., vocab) with every token the grammar forbids set to -inf."""
        allowed = self.allowed(scores.device)
        width = scores.shape[-1]
        if width > allowed.shape[0]:  # logits wider than the vocabulary: the extra ids are never allowed
            import torch

            allowed = torch.cat([allowed, allowed.new_zeros(width - allowed.shape[0])])
        return scores.masked_fill(~allowed[:width], float("-inf"))

    def advance(self, token: int) -> None:
        """Feed the chosen token; an engine bug (a token the mask forbade) raises instead of going on."""
        self._allowed = None
        if not self._matcher.consume_token(int(token)):
            from focus_integrations.errors import ConstraintError

            raise ConstraintError(
                f"token {token} does not satisfy the {self.response_format.type} constraint: "
                f"{_first_line(self._matcher.get_error())}"
            )

    @property
    def finished(self) -> bool:
        """The grammar is complete and accepts nothing more (decoding stops here)."""
        return bool(self._matcher.is_stopped())

    @property
    def satisfied(self) -> bool:
        """The text so far is a complete answer of the grammar (False when it was cut off)."""
        return bool(self._matcher.is_accepting())
