"""Structured output and forced tool calls through the real server, with the real ``openai`` SDK.

The tiny test model has random weights: what makes its answers parse is the grammar the server decodes them
under (``response_format`` json_schema / json_object, the call grammar of a required ``tool_choice``), not
any scripted reply. Schemas are bounded (enums, ``maxLength``) so every answer ends within its budget.
"""

from __future__ import annotations

import json
from typing import Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from focus_integrations.tool_prompting import json_instruction
from tests.server.conftest import MODEL_ID, QUESTION, two_image_messages


class Verdict(BaseModel):
    cheaper: Literal["first", "second"]
    reason: str = Field(max_length=10)
    sure: bool


class GetPrice(BaseModel):
    """Price of one of the two products."""

    product: Literal["first", "second"]
    currency: str = Field(max_length=3)


SCHEMA = {
    "type": "object",
    "properties": {"cheaper": {"type": "string", "enum": ["first", "second"]}},
    "required": ["cheaper"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "strict": True,
        "description": "Look a product up",
        "parameters": {
            "type": "object",
            "properties": {
                "colour": {"type": "string", "enum": ["red", "blue"]},
                "page": {"type": "boolean"},
            },
            "required": ["colour", "page"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=180)


def test_parse_with_a_pydantic_model(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL_ID, messages=two_image_messages(), response_format=Verdict, max_tokens=120
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, Verdict)
    assert Verdict.model_validate_json(choice.message.content) == choice.message.parsed
    assert completion.model_extra["focus"]["constraint_satisfied"] is True
    assert completion.model_extra["focus"]["n_rows"] == 3  # still FOCUS over both images


def test_json_schema_equals_the_direct_constrained_decode(client: openai.OpenAI, reference_decoder) -> None:
    from PIL import Image

    response = client.chat.completions.create(
        model=MODEL_ID, messages=two_image_messages(), response_format=RESPONSE_FORMAT, max_tokens=40, seed=0
    )
    text = response.choices[0].message.content
    jsonschema.validate(json.loads(text), SCHEMA)
    images = [Image.new("RGB", (32, 24), "red"), Image.new("RGB", (24, 32), "blue")]
    direct = reference_decoder.generate(
        messages=[
            {"role": "system", "content": json_instruction(RESPONSE_FORMAT)},
            {
                "role": "user",
                "content": [{"type": "image", "image": i} for i in images]
                + [{"type": "text", "text": QUESTION}],
            },
        ],
        response_format=RESPONSE_FORMAT,
        max_new_tokens=40,
        seed=0,
    )
    assert text == direct.text and direct.constraint_satisfied
    streamed = client.chat.completions.create(
        model=MODEL_ID,
        messages=two_image_messages(),
        response_format=RESPONSE_FORMAT,
        max_tokens=40,
        seed=0,
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text


def test_json_object(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL_ID, messages=two_image_messages(), response_format={"type": "json_object"}, max_tokens=60
    )
    assert isinstance(json.loads(response.choices[0].message.content), dict)


def test_a_cut_off_structured_answer_is_reported_as_length(client: openai.OpenAI) -> None:
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(
            model=MODEL_ID, messages=two_image_messages(), response_format=Verdict, max_tokens=6
        )
    response = client.chat.completions.create(
        model=MODEL_ID, messages=two_image_messages(), response_format=RESPONSE_FORMAT, max_tokens=6
    )
    assert response.choices[0].finish_reason == "length"
    assert response.model_extra["focus"]["constraint_satisfied"] is False
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.choices[0].message.content)


def test_forced_named_call_has_valid_arguments(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL_ID,
        messages=two_image_messages(),
        tools=[openai.pydantic_function_tool(GetPrice), LOOKUP],
        tool_choice={"type": "function", "function": {"name": "GetPrice"}},
        max_tokens=120,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "GetPrice" and call.id.startswith("call_")
    assert isinstance(call.function.parsed_arguments, GetPrice)
    streamed = list(
        client.chat.completions.create(
            model=MODEL_ID,
            messages=two_image_messages(),
            tools=[openai.pydantic_function_tool(GetPrice), LOOKUP],
            tool_choice={"type": "function", "function": {"name": "GetPrice"}},
            max_tokens=120,
            stream=True,
        )
    )
    calls = [tc for c in streamed if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(c.function.name, c.function.arguments) for c in calls] == [("GetPrice", call.function.arguments)]
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_required_call_names_an_offered_tool_with_valid_arguments(client: openai.OpenAI) -> None:
    tools = [openai.pydantic_function_tool(GetPrice), LOOKUP]
    response = client.chat.completions.create(
        model=MODEL_ID, messages=two_image_messages(), tools=tools, tool_choice="required", max_tokens=120
    )
    assert response.choices[0].finish_reason == "tool_calls"
    (call,) = response.choices[0].message.tool_calls
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
    # The call goes back with its result, and the chat continues (tool_choice auto: plain decoding).
    follow_up = two_image_messages() + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"price": 3})},
    ]
    again = client.chat.completions.create(model=MODEL_ID, messages=follow_up, max_tokens=3, tools=tools)
    assert again.usage.prompt_tokens > response.usage.prompt_tokens


def test_a_cut_off_forced_call_is_length_with_partial_arguments(client: openai.OpenAI) -> None:
    kwargs = {
        "model": MODEL_ID,
        "messages": two_image_messages(),
        "tools": [openai.pydantic_function_tool(GetPrice)],
        "tool_choice": {"type": "function", "function": {"name": "GetPrice"}},
        "max_tokens": 30,
    }
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(**kwargs)
    response = client.chat.completions.create(**kwargs)
    choice = response.choices[0]
    assert choice.finish_reason == "length"
    (call,) = choice.message.tool_calls
    assert call.function.name == "GetPrice"
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.function.arguments)
    streamed = list(client.chat.completions.create(**kwargs, stream=True))
    assert streamed[-1].choices[0].finish_reason == "length"


def test_a_schema_the_grammar_cannot_build_is_a_400(client: openai.OpenAI) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "("}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL_ID, messages=two_image_messages(), response_format=bad, max_tokens=4
        )
    assert caught.value.code == "unsupported_schema"
    assert caught.value.param == "response_format"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL_ID, messages=two_image_messages(), response_format={"type": "xml"}, max_tokens=4
        )
    assert "response_format" in caught.value.message


def test_auto_tools_with_a_response_format_allow_a_call_or_the_answer_only(reference_decoder) -> None:
    """The grammar of tool_choice auto next to a response_format: a call to an offered tool, or the answer."""
    from focus_integrations.constraints import ResponseFormat
    from focus_integrations.tool_prompting import tool_call_or_answer

    grammar = tool_call_or_answer(reference_decoder, [LOOKUP], RESPONSE_FORMAT)
    call = '<tool_call>\n{"name": "lookup", "arguments": {"colour": "red", "page": true}}\n</tool_call>'
    for text, complete in (
        (call, True),
        ('{"cheaper": "second"}', True),
        (
            '{"name": "lookup", "arguments": {"colour": "red", "page": true}}',
            False,
        ),  # a call needs its markup
        ('{"cheaper": "third"}', False),
        ("The second one.", False),
    ):
        constraint = reference_decoder._constraint(ResponseFormat.parse(grammar))
        accepted = True
        for token in reference_decoder.tokenizer(text, add_special_tokens=False)["input_ids"]:
            if not constraint.allowed()[token]:
                accepted = False
                break
            constraint.advance(token)
        assert (accepted and constraint.satisfied) == complete, text


def test_auto_tools_with_a_response_format_answer_a_call_or_valid_json(client: openai.OpenAI) -> None:

    for seed in range(3):
        response = client.chat.completions.create(
            model=MODEL_ID,
            messages=two_image_messages(),
            tools=[LOOKUP],
            response_format=RESPONSE_FORMAT,
            max_tokens=120,
            temperature=1.0,
            seed=seed,
        )
        choice = response.choices[0]
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls" and not choice.message.content
            (call,) = choice.message.tool_calls
            jsonschema.validate(json.loads(call.function.arguments), LOOKUP["function"]["parameters"])
        else:
            assert choice.finish_reason == "stop"
            jsonschema.validate(json.loads(choice.message.content), SCHEMA)
