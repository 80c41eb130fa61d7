"""Constrained decoding (``response_format``) on the combined logits, with random-weight models of every family.

Random weights answer nonsense, so these tests show what the grammar guarantees whatever the model says:
every output parses and validates, in FOCUS and vanilla mode, and the constrained FOCUS decode equals a slow
reference (uncached rows combined by hand, masked by a library-free oracle, argmax) token for token.
"""

from __future__ import annotations

import itertools
import json
import re

import jsonschema
import numpy as np
import pytest
import torch
from PIL import Image

from focus_integrations import (
    DecodingOptions,
    FocusDecoder,
    InvalidOptionError,
    UnsupportedSchemaError,
    UnsupportedTokenizerError,
    default_model_path,
)
from focus_integrations.constraints import ResponseFormat, vocabulary_for
from focus_integrations.testing.tiny_models import FAMILIES, tiny_checkpoint

from .reference import encode_one_row, focus_by_hand, render, row_images, uncached_last_logits

PROMPT = "Describe the images as JSON."

# Bounded everywhere (enum, integer range, maxLength): the longest answer fits in WORST_CASE_TOKENS tokens of a
# byte-level vocabulary (8 characters of at most 6 bytes each as \uXXXX escapes), so every decode must finish.
SCHEMA = {
    "type": "object",
    "properties": {
        "color": {"enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 99},
        "label": {"type": "string", "maxLength": 8},
        "shiny": {"type": "boolean"},
    },
    "required": ["color", "count", "label", "shiny"],
    "additionalProperties": False,
}
WORST_CASE_TOKENS = 140
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "scene", "schema": SCHEMA, "strict": True}}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two spinning OpenMP
    # threads make each step about 10x slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 30), (33, 47), (50, 50)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes[:n]]


@pytest.fixture(scope="module", params=FAMILIES)
def decoder(request) -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint(request.param), dtype="float32")


def test_json_schema_output_validates_in_focus_and_vanilla_mode(decoder: FocusDecoder) -> None:
    for mode in ("focus", "vanilla"):
        out = decoder.generate(
            images=_images(2),
            prompt=PROMPT,
            mode=mode,
            seed=3,
            response_format=JSON_SCHEMA,
            max_new_tokens=WORST_CASE_TOKENS,
        )
        jsonschema.validate(json.loads(out.text), SCHEMA)
        assert (out.finish_reason, out.constraint_satisfied) == ("stop", True), mode
        assert out.settings["response_format"] == ResponseFormat.parse(JSON_SCHEMA).to_dict()


def test_regex_and_choice_outputs_match(decoder: FocusDecoder) -> None:
    pattern = r"[0-9]{3}-[a-z]{2,4}"
    out = decoder.generate(
        images=_images(2), prompt=PROMPT, mode="focus", response_format={"type": "regex", "pattern": pattern}
    )
    assert re.fullmatch(pattern, out.text), out.text
    assert out.constraint_satisfied
    choices = ["red", "green", "blue", "none of them"]
    out = decoder.generate(
        images=_images(2),
        prompt=PROMPT,
        mode="vanilla",
        response_format={"type": "choice", "choices": choices},
    )
    assert out.text in choices and out.finish_reason == "stop"


# ------------------------------------------------------------------------------------- slow reference

REFERENCE_SCHEMA = {
    "type": "object",
    "properties": {"color": {"enum": ["red", "green", "blue"]}, "size": {"enum": ["S", "M", "XL"]}},
    "required": ["color", "size"],
    "additionalProperties": False,
}
# Every valid answer, spelled as json.dumps spells it (the engine's JSON style): a finite, prefix-free set.
VALID_ANSWERS = [
    json.dumps({"color": c, "size": s})
    for c, s in itertools.product(["red", "green", "blue"], ["S", "M", "XL"])
]


def _oracle_mask(token_texts: list[str], prefix: str, vocab: int) -> torch.Tensor:
    """Token t is allowed iff prefix + text(t) is still the start of a valid answer (no grammar library)."""
    allowed = torch.zeros(vocab, dtype=torch.bool)
    for token, piece in enumerate(token_texts):
        allowed[token] = any(answer.startswith(prefix + piece) for answer in VALID_ANSWERS)
    return allowed


@pytest.mark.parametrize("family", FAMILIES)
def test_constrained_focus_equals_masked_reference_argmax(family: str) -> None:
    decoder = FocusDecoder.from_pretrained(tiny_checkpoint(family), dtype="float32")
    images, alpha, seed = _images(2, seed=1), 0.3, 5
    out = decoder.generate(
        images=images,
        prompt=PROMPT,
        mode="focus",
        alpha=alpha,
        seed=seed,
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": REFERENCE_SCHEMA}},
        max_new_tokens=60,
    )
    model, processor, tokenizer = decoder.model, decoder.processor, decoder.tokenizer
    text, add_special = render(processor, images, PROMPT)
    rows = [encode_one_row(processor, text, imgs, add_special) for imgs in row_images(images, seed)]
    token_texts = [tokenizer.decode([token]) for token in range(len(tokenizer))]
    generated: list[int] = []
    answer = ""
    while answer not in VALID_ANSWERS:
        z = [uncached_last_logits(model, row, generated) for row in rows]
        combined = focus_by_hand(z, alpha, decoder.banned_token_ids)
        allowed = _oracle_mask(token_texts, answer, combined.shape[0])
        generated.append(int(torch.argmax(combined.masked_fill(~allowed, float("-inf")))))
        answer = tokenizer.decode(generated)
    assert out.token_ids == generated
    assert out.text == answer and out.finish_reason == "stop"


# ------------------------------------------------------------------------------------- ordering and budget


@pytest.fixture(scope="module")
def qwen() -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"), dtype="float32")


def test_warpers_act_on_the_allowed_tokens_only(qwen: FocusDecoder) -> None:
    # top_k=1 / a tiny top_p before the mask would keep only tokens the grammar forbids.
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": REFERENCE_SCHEMA}}
    for sampling in (
        {"top_k": 1},
        {"top_p": 0.01},
        {"temperature": 0.3, "top_k": 2, "repetition_penalty": 1.3},
    ):
        out = qwen.generate(
            images=_images(2),
            prompt=PROMPT,
            do_sample=True,
            seed=11,
            response_format=response_format,
            max_new_tokens=60,
            **sampling,
        )
        assert out.text in VALID_ANSWERS


def test_plausibility_cutoff_keeps_an_allowed_token(qwen: FocusDecoder) -> None:
    # VCD's cutoff at beta=0.9 keeps about one token; relative to the best token the grammar allows it keeps
    # one of those, instead of banning every allowed token.
    choices = ["alpha", "beta", "gamma"]
    for mode in ("vcd", "focus"):
        out = qwen.generate(
            images=_images(2),
            prompt=PROMPT,
            mode=mode,
            plausibility_beta=0.9,
            response_format={"type": "choice", "choices": choices},
        )
        assert out.text in choices


def test_cut_off_output_is_reported_not_valid(qwen: FocusDecoder) -> None:
    schema = {
        "type": "object",
        "properties": {"description": {"type": "string"}},
        "required": ["description"],
    }
    unbounded = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    out = qwen.generate(images=_images(2), prompt=PROMPT, response_format=unbounded, max_new_tokens=3)
    assert out.finish_reason == "length" and out.constraint_satisfied is False
    assert out.text.startswith("{")
    free = qwen.generate(images=_images(2), prompt=PROMPT, max_new_tokens=3)
    assert free.constraint_satisfied is None


def test_stream_yields_the_same_text(qwen: FocusDecoder) -> None:
    stream = qwen.stream(
        images=_images(2),
        prompt=PROMPT,
        seed=3,
        response_format=JSON_SCHEMA,
        max_new_tokens=WORST_CASE_TOKENS,
    )
    text = "".join(stream)
    assert text == stream.output.text
    jsonschema.validate(json.loads(text), SCHEMA)


def test_response_format_as_decoder_default_and_text_override(tmp_path) -> None:
    decoder = FocusDecoder.from_pretrained(
        tiny_checkpoint("llava"), response_format={"type": "choice", "choices": ["yes", "no"]}
    )
    assert decoder.generate(images=_images(2), prompt=PROMPT).text in ("yes", "no")
    free = decoder.generate(
        images=_images(2), prompt=PROMPT, response_format={"type": "text"}, max_new_tokens=4
    )
    assert free.constraint_satisfied is None


# ------------------------------------------------------------------------------------- errors


def test_default_model_word_level_tokenizer_is_a_clear_error() -> None:
    decoder = FocusDecoder.from_pretrained(default_model_path())
    image = Image.new("RGB", (32, 32), (200, 0, 0))
    for response_format in (
        JSON_SCHEMA,
        {"type": "choice", "choices": ["red", "blue"]},
        {"type": "json_object"},
    ):
        with pytest.raises(UnsupportedTokenizerError, match="tokenizer"):
            decoder.generate(
                images=[image, image], prompt="what color is it ?", response_format=response_format
            )
        with pytest.raises(UnsupportedTokenizerError):
            decoder.stream(images=[image, image], prompt="what color ?", response_format=response_format)
    assert not decoder.busy
    # Unconstrained decoding still works.
    assert decoder.generate(images=[image], prompt="what color is it ?", max_new_tokens=2).token_ids


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {"type": "string"}}}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}},
        {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"$ref": "https://example.com/s.json"}},
        },
        {"type": "regex", "pattern": "(unclosed"},
    ],
)
def test_unsupported_schema_or_pattern_is_a_clear_error(qwen: FocusDecoder, response_format) -> None:
    with pytest.raises(UnsupportedSchemaError):
        qwen.generate(images=_images(2), prompt=PROMPT, response_format=response_format)


@pytest.mark.parametrize(
    "response_format",
    [
        "json",
        {"type": "yaml"},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"schema": {}, "strict": "yes"}},
        {"type": "regex", "pattern": ""},
        {"type": "choice", "choices": "red"},
        {"type": "choice", "choices": ["red", ""]},
        {"type": "tool_call", "tools": []},
        {"type": "tool_call", "tools": [{"function": {"name": "a"}}, {"function": {"name": "a"}}]},
    ],
)
def test_malformed_response_format_is_an_option_error(response_format) -> None:
    with pytest.raises(InvalidOptionError):
        DecodingOptions.resolve(response_format=response_format)


def test_options_keep_the_response_format_through_resolve() -> None:
    base = DecodingOptions.resolve(response_format=JSON_SCHEMA)
    assert DecodingOptions.resolve(base, alpha=0.2).response_format == base.response_format
    assert (
        DecodingOptions.resolve(base, response_format=None).response_format == base.response_format
    )  # not set
    assert (
        DecodingOptions.resolve(base, response_format={"type": "text"}).response_format is None
    )  # turned off
    flat = {"type": "json_schema", "schema": SCHEMA, "name": "scene"}  # the flat shape some clients send
    assert ResponseFormat.parse(flat).schema == SCHEMA


def test_strict_closes_objects_and_non_strict_keeps_the_schema_as_written(qwen: FocusDecoder) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    vocabulary = vocabulary_for(qwen.tokenizer, qwen.model.get_output_embeddings().weight.shape[0], [256])
    comma = qwen.tokenizer.convert_tokens_to_ids(",")
    for strict, extra_key_allowed in ((True, False), (False, True)):
        constraint = vocabulary.constraint(
            ResponseFormat.parse(
                {"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": strict}}
            )
        )
        for token in qwen.tokenizer('{"a": 1', add_special_tokens=False)["input_ids"]:
            constraint.advance(token)
        assert bool(constraint.allowed()[comma]) is extra_key_allowed


def test_batched_constrained_requests_equal_their_solo_decodes(qwen: FocusDecoder) -> None:
    # The batched engine makes one chooser (and so one grammar state) per request.
    requests = [
        dict(
            images=_images(2),
            prompt=PROMPT,
            seed=1,
            response_format=JSON_SCHEMA,
            max_new_tokens=WORST_CASE_TOKENS,
        ),
        dict(
            images=_images(3, seed=2),
            prompt="Which?",
            response_format={"type": "choice", "choices": ["a", "bb"]},
        ),
        dict(images=_images(2, seed=3), prompt=PROMPT, max_new_tokens=6),  # unconstrained, in the same batch
    ]
    batched = qwen.generate_batch(requests)
    for request, out in zip(requests, batched):
        solo = qwen.generate(**request)
        assert (out.token_ids, out.constraint_satisfied) == (solo.token_ids, solo.constraint_satisfied)
    jsonschema.validate(json.loads(batched[0].text), SCHEMA)
    assert batched[1].text in ("a", "bb")
