"""Structured output and forced tool calls through ChatFocus with RANDOM-weight models of every family.

No scripted output here: the tiny models write nonsense, and the grammar constraint alone must make every
answer parse and validate (``with_structured_output``) and every forced call name an offered tool with valid
arguments, on templates with tool syntax (Qwen) and without (LLaVA, Gemma, ...). The schemas are bounded
(enums, integer ranges, maxLength), so every answer fits the token budget; an unbounded one that runs out
is reported, never returned as valid.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import jsonschema
import pytest
from focus_lc_helpers import png_b64
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel, ConfigDict, Field

from focus_integrations import default_model_path
from focus_integrations.errors import IncompleteOutputError, InvalidOptionError, UnsupportedTokenizerError
from focus_integrations.langchain import ChatFocus
from focus_integrations.testing import FAMILIES, tiny_checkpoint


class Verdict(BaseModel):
    """Which photo shows the product, and how sure."""

    model_config = ConfigDict(extra="forbid")
    photo: Literal["first", "second", "neither"]
    colour: str = Field(max_length=6)
    confidence: int = Field(ge=0, le=10)


@tool
def lookup_price(sku: Literal["A-1", "B-2", "C-3"], quantity: Annotated[int, Field(ge=1, le=9)] = 1) -> float:
    """Price in EUR of a quantity of the product with this SKU."""
    return 1.0


@tool
def zoom(region: Literal["left", "right", "top", "bottom"]) -> str:
    """Zoom into a region of the photo."""
    return region


TOOL_SCHEMAS = {
    "lookup_price": lookup_price.tool_call_schema.model_json_schema(),
    "zoom": zoom.tool_call_schema.model_json_schema(),
}


def _question() -> list[HumanMessage]:
    return [
        HumanMessage(
            content=[
                {"type": "text", "text": "Which photo shows the red mug?"},
                {"type": "image", "base64": png_b64("red"), "mime_type": "image/png"},
                {"type": "image", "base64": png_b64("blue", (24, 30)), "mime_type": "image/png"},
            ]
        )
    ]


@pytest.fixture(scope="module", params=FAMILIES)
def llm(request) -> ChatFocus:
    return ChatFocus(model=str(tiny_checkpoint(request.param)), max_tokens=120, seed=0)


def test_with_structured_output_validates_for_every_method(llm: ChatFocus) -> None:
    schema = Verdict.model_json_schema()
    for method, mode in (("json_schema", "focus"), ("function_calling", "vanilla")):
        verdict = llm.with_structured_output(Verdict, method=method).invoke(_question(), mode=mode)
        assert isinstance(verdict, Verdict), method
        jsonschema.validate(verdict.model_dump(), schema)
    raw = llm.with_structured_output(schema, method="json_schema", include_raw=True).invoke(_question())
    assert raw["parsing_error"] is None and raw["raw"].response_metadata["constraint_satisfied"] is True
    jsonschema.validate(raw["parsed"], schema)


@pytest.mark.parametrize("tool_choice", ["any", "zoom"])  # "required" is normalised to "any"
def test_forced_tool_calls_are_valid_calls(llm: ChatFocus, tool_choice: str) -> None:
    bound = llm.bind_tools([lookup_price, zoom], tool_choice=tool_choice, strict=True)
    message = bound.invoke(_question())
    assert message.invalid_tool_calls == [] and message.content == ""
    (call,) = message.tool_calls
    assert call["name"] in TOOL_SCHEMAS and (
        tool_choice in ("any", "required") or call["name"] == tool_choice
    )
    jsonschema.validate(call["args"], TOOL_SCHEMAS[call["name"]])


def test_streamed_forced_call_equals_the_invoked_one() -> None:
    llm = ChatFocus(model=str(tiny_checkpoint("gemma3")), max_tokens=120, seed=0)  # no tool syntax: bare JSON
    bound = llm.bind_tools([lookup_price, zoom], tool_choice="any", strict=True)
    chunks = list(bound.stream(_question()))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert merged.content == ""  # the call is never shown as text
    invoked = bound.invoke(_question())
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [
        (c["name"], c["args"]) for c in invoked.tool_calls
    ]


def test_json_mode_parses_or_says_it_was_cut_off() -> None:
    # {"type": "json_object"} is unbounded: the answer is a JSON object, or the budget ran out and it says so.
    llm = ChatFocus(model=str(tiny_checkpoint("llava")), max_tokens=40, seed=0)
    structured = llm.with_structured_output(None, method="json_mode", include_raw=True)
    out = structured.invoke(_question())
    if out["raw"].response_metadata["finish_reason"] == "stop":
        assert isinstance(out["parsed"], dict) and out["parsing_error"] is None
    else:
        assert isinstance(out["parsing_error"], IncompleteOutputError) and out["parsed"] is None


def test_a_cut_off_answer_raises_instead_of_returning_none() -> None:
    llm = ChatFocus(model=str(tiny_checkpoint("qwen2_5_vl")), max_tokens=6, seed=0)
    for method in ("json_schema", "function_calling"):
        with pytest.raises(IncompleteOutputError, match="cut off"):
            llm.with_structured_output(Verdict, method=method).invoke(_question())
    message = llm.bind_tools([zoom], tool_choice="zoom").invoke(_question())
    assert message.tool_calls == [] and message.content == ""
    assert (
        message.invalid_tool_calls[0]["name"] == "zoom"
        and "cut off" in message.invalid_tool_calls[0]["error"]
    )


def test_response_format_passed_to_a_call() -> None:
    llm = ChatFocus(model=str(tiny_checkpoint("idefics3")), max_tokens=40, seed=0)
    choice = llm.invoke(_question(), response_format={"type": "choice", "choices": ["first", "second"]})
    assert choice.content in ("first", "second")
    verdict = llm.invoke(_question(), response_format=Verdict, max_tokens=120)  # a class, as ChatOpenAI takes
    Verdict.model_validate_json(verdict.content)
    with pytest.raises(InvalidOptionError, match="cannot both"):
        llm.bind_tools([zoom], tool_choice="zoom").invoke(
            _question(), response_format={"type": "json_object"}
        )
    with pytest.raises(InvalidOptionError, match="tools the model may call"):
        llm.bind_tools([zoom]).invoke(_question(), response_format={"type": "json_object"})


def test_default_model_cannot_spell_json_and_says_so() -> None:
    llm = ChatFocus(model=str(default_model_path()), max_tokens=20)
    with pytest.raises(UnsupportedTokenizerError, match="tokenizer"):
        llm.with_structured_output(Verdict).invoke(_question())
    with pytest.raises(UnsupportedTokenizerError):
        llm.bind_tools([zoom], tool_choice="any").invoke(_question())
    assert isinstance(llm.invoke(_question()).content, str)  # free text still works


def test_the_tool_call_follows_the_template_syntax() -> None:
    qwen = ChatFocus(model=str(tiny_checkpoint("qwen2_vl")), max_tokens=120, seed=0)
    message = qwen.bind_tools([zoom], tool_choice="zoom", strict=True).invoke(_question())
    call_format = message.response_metadata["focus"]["response_format"]
    assert call_format["type"] == "tool_call" and call_format["suffix"] == "\n</tool_call>"
    assert json.loads(json.dumps(message.tool_calls[0]["args"]))["region"] in (
        "left",
        "right",
        "top",
        "bottom",
    )
    llava = ChatFocus(model=str(tiny_checkpoint("llava")), max_tokens=120, seed=0)
    message = llava.bind_tools([zoom], tool_choice="zoom", strict=True).invoke(_question())
    assert message.response_metadata["focus"]["response_format"]["suffix"] == ""
    assert message.tool_calls[0]["name"] == "zoom"
