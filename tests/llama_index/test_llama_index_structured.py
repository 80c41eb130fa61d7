"""Structured output and forced tools through FocusMultiModalLLM with RANDOM-weight models of every family.

The grammar alone makes every answer parse into the output class: ``structured_predict`` (sync, async,
streamed), ``as_structured_llm``, and required tool calls (on the tool-rendering Qwen templates) with
arguments valid for the tool's schema. Bounded schemas, so every answer fits the token budget.
"""

from __future__ import annotations

from typing import Literal

import jsonschema
import pytest
from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
from llama_index.core.prompts import ChatPromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, ConfigDict, Field

from focus_integrations import default_model_path
from focus_integrations.errors import IncompleteOutputError, InvalidOptionError, UnsupportedTokenizerError
from focus_integrations.llama_index import FocusMultiModalLLM
from focus_integrations.llama_index.tools import INVALID_TOOL_CALLS_KEY
from focus_integrations.testing import FAMILIES, tiny_checkpoint


class Shape(BaseModel):
    """What the photo shows."""

    model_config = ConfigDict(extra="forbid")
    colour: Literal["red", "blue", "green"]
    sides: int = Field(ge=0, le=8)
    name: str = Field(max_length=6)


class PickColour(BaseModel):
    model_config = ConfigDict(extra="forbid")
    colour: Literal["red", "blue", "green"]
    count: int = Field(ge=1, le=5)


def pick_colour(colour: str, count: int) -> str:
    """Pick a colour (count times)."""
    return colour


def _tool() -> FunctionTool:
    return FunctionTool.from_defaults(fn=pick_colour, fn_schema=PickColour)


def _messages(image_files) -> list[ChatMessage]:
    return [
        ChatMessage(
            role="user",
            blocks=[
                ImageBlock(path=image_files[0]),
                ImageBlock(path=image_files[1]),
                TextBlock(text="Which shape is red?"),
            ],
        )
    ]


@pytest.fixture(scope="module", params=FAMILIES)
def family_llm(request) -> FocusMultiModalLLM:
    return FocusMultiModalLLM(str(tiny_checkpoint(request.param)), max_new_tokens=100, seed=0)


def test_structured_predict_and_structured_llm_validate(family_llm: FocusMultiModalLLM, image_files) -> None:
    prompt = ChatPromptTemplate(message_templates=_messages(image_files))
    shape = family_llm.structured_predict(Shape, prompt)
    assert isinstance(shape, Shape)
    jsonschema.validate(shape.model_dump(), Shape.model_json_schema())
    response = family_llm.as_structured_llm(Shape).chat(_messages(image_files), mode="vanilla")
    assert isinstance(response.raw, Shape)


def test_required_tool_call_is_a_valid_call(family_llm: FocusMultiModalLLM, image_files) -> None:
    tool = _tool()
    if not family_llm.supports_tools():  # no tool syntax in the template: a clear error, not prose
        with pytest.raises(InvalidOptionError, match="does not render tools"):
            family_llm.chat_with_tools([tool], chat_history=_messages(image_files), tool_required=True)
        return
    schema = tool.metadata.get_parameters_dict()
    response = family_llm.chat_with_tools([tool], chat_history=_messages(image_files), tool_required=True)
    (selection,) = family_llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "pick_colour"
    jsonschema.validate(selection.tool_kwargs, schema)
    assert response.raw["constraint_satisfied"] is True and response.message.content == ""


async def test_async_and_streamed_structured_predict(decoder, image_files) -> None:
    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=100, seed=0)
    prompt = ChatPromptTemplate(message_templates=_messages(image_files))
    final = llm.structured_predict(Shape, prompt)
    assert await llm.astructured_predict(Shape, prompt) == final
    streamed = list(llm.stream_structured_predict(Shape, prompt))
    assert len(streamed) > 1 and streamed[-1] == final  # partial objects, then the validated one
    astreamed = [item async for item in await llm.astream_structured_predict(Shape, prompt)]
    assert astreamed[-1] == final


def test_a_cut_off_answer_raises(decoder, image_files) -> None:
    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=5, seed=0)
    prompt = ChatPromptTemplate(message_templates=_messages(image_files))
    with pytest.raises(IncompleteOutputError, match="cut off"):
        llm.structured_predict(Shape, prompt)
    with pytest.raises(IncompleteOutputError):
        list(llm.stream_structured_predict(Shape, prompt))
    tool = _tool()
    response = llm.chat(_messages(image_files), tools=[tool], tool_choice="pick_colour")
    (invalid,) = response.message.additional_kwargs[INVALID_TOOL_CALLS_KEY]
    assert invalid["name"] == "pick_colour" and "cut off" in invalid["error"]


def test_response_format_as_a_call_option(decoder, image_files) -> None:
    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=20, seed=0)
    choices = ["circle", "triangle", "square"]
    response = llm.chat(_messages(image_files), response_format={"type": "choice", "choices": choices})
    assert response.message.content in choices


def test_default_model_says_it_cannot_spell_json(image_files) -> None:
    llm = FocusMultiModalLLM(str(default_model_path()), max_new_tokens=20)
    with pytest.raises(UnsupportedTokenizerError, match="tokenizer"):
        llm.structured_predict(Shape, ChatPromptTemplate(message_templates=_messages(image_files)))
