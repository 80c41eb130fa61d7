"""The real ``openai`` SDK against a real ``focus serve`` process on loopback.

Answers are compared with the same request decoded directly by ``FocusDecoder`` in this process (greedy,
seeded noise): the server must not change what the engine says.
"""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from PIL import Image

from focus_integrations.server.protocol import supports_response_format
from tests.server.conftest import MODEL_ID, data_uri, image_part

QUESTION = "Which product is cheaper?"


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


def _two_images() -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                image_part(data_uri("red", (32, 24))),
                image_part(data_uri("blue", (24, 32))),
                {"type": "text", "text": QUESTION},
            ],
        }
    ]


def _direct(reference_decoder, **options) -> object:
    images = [Image.new("RGB", (32, 24), "red"), Image.new("RGB", (24, 32), "blue")]
    return reference_decoder.generate(images=images, prompt=QUESTION, **options)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL_ID]
    assert client.models.retrieve(MODEL_ID).id == MODEL_ID


def test_chat_with_two_images_equals_the_direct_focus_decode(
    client: openai.OpenAI, reference_decoder
) -> None:
    response = client.chat.completions.create(model=MODEL_ID, messages=_two_images(), max_tokens=8, seed=0)
    expected = _direct(reference_decoder, max_new_tokens=8, seed=0)
    choice = response.choices[0]
    assert choice.message.content == expected.text
    assert choice.finish_reason == expected.finish_reason
    assert response.usage.prompt_tokens == expected.usage.input_tokens
    assert response.usage.completion_tokens == expected.usage.output_tokens == 8
    focus = response.model_extra["focus"]
    assert (focus["rule"], focus["n_images"], focus["n_rows"]) == ("focus", 2, 3)


def test_focus_settings_as_extra_body_fields(client: openai.OpenAI, reference_decoder) -> None:
    response = client.chat.completions.create(
        model=MODEL_ID, messages=_two_images(), max_completion_tokens=6, extra_body={"mode": "vanilla"}
    )
    assert response.model_extra["focus"]["rule"] == "vanilla"
    assert (
        response.choices[0].message.content
        == _direct(reference_decoder, max_new_tokens=6, mode="vanilla").text
    )
    alpha = client.chat.completions.create(
        model=MODEL_ID,
        messages=_two_images(),
        max_tokens=6,
        seed=0,
        extra_body={"alpha": 0.7, "noise": "gray"},
    )
    assert alpha.model_extra["focus"]["alpha"] == 0.7 and alpha.model_extra["focus"]["noise"] == "gray"
    assert (
        alpha.choices[0].message.content
        == _direct(reference_decoder, max_new_tokens=6, seed=0, alpha=0.7, noise="gray").text
    )


def test_stream_sends_the_same_text_and_a_usage_chunk(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL_ID, messages=_two_images(), max_tokens=8, seed=0)
    chunks = list(
        client.chat.completions.create(
            model=MODEL_ID,
            messages=_two_images(),
            max_tokens=8,
            seed=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert all(c.usage is None for c in chunks[:-1])


def test_text_only_turns_decode_plainly(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        max_tokens=4,
    )
    assert response.model_extra["focus"]["n_images"] == 0
    assert response.usage.completion_tokens == 4


def test_file_urls_only_inside_the_media_folder(client: openai.OpenAI, media_dir: Path) -> None:
    inside = [
        {
            "role": "user",
            "content": [
                image_part((media_dir / "red.png").as_uri()),
                image_part((media_dir / "blue.png").as_uri()),
                {"type": "text", "text": QUESTION},
            ],
        }
    ]
    assert (
        client.chat.completions.create(model=MODEL_ID, messages=inside, max_tokens=2).model_extra["focus"][
            "n_images"
        ]
        == 2
    )
    for url in (
        "file:///etc/hostname",
        (media_dir / ".." / "elsewhere.png").as_uri(),
        "https://example.com/a.png",
    ):
        outside = [{"role": "user", "content": [image_part(url), {"type": "text", "text": "?"}]}]
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL_ID, messages=outside, max_tokens=2)
        assert caught.value.status_code == 400


def test_forced_tool_call_names_the_tool(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_price",
                "description": "Price of a product",
                "parameters": {"type": "object", "properties": {"product": {"type": "string"}}},
            },
        }
    ]
    choice = {"type": "function", "function": {"name": "get_price"}}
    response = client.chat.completions.create(
        model=MODEL_ID, messages=_two_images(), max_tokens=12, tools=tools, tool_choice=choice
    )
    message = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert [call.function.name for call in message.tool_calls] == ["get_price"]
    assert message.tool_calls[0].id.startswith("call_")
    streamed = list(
        client.chat.completions.create(
            model=MODEL_ID,
            messages=_two_images(),
            max_tokens=12,
            tools=tools,
            tool_choice=choice,
            stream=True,
        )
    )
    calls = [tc for c in streamed if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [c.function.name for c in calls] == ["get_price"]
    assert calls[0].function.arguments == message.tool_calls[0].function.arguments
    assert streamed[-1].choices[0].finish_reason == "tool_calls"
    # The tool's answer goes back in a tool turn (with the call it answers), and the chat continues.
    follow_up = _two_images() + [
        {"role": "assistant", "content": None, "tool_calls": [message.tool_calls[0].model_dump()]},
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": json.dumps({"price": 3})},
    ]
    again = client.chat.completions.create(model=MODEL_ID, messages=follow_up, max_tokens=3, tools=tools)
    assert again.usage.prompt_tokens > response.usage.prompt_tokens


def test_structured_output(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"cheaper": {"type": "string", "enum": ["first", "second"]}},
        "required": ["cheaper"],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    if not supports_response_format():
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model=MODEL_ID, messages=_two_images(), max_tokens=16, response_format=response_format
            )
        assert caught.value.code == "response_format_unsupported"
        return
    response = client.chat.completions.create(
        model=MODEL_ID, messages=_two_images(), max_tokens=32, response_format=response_format
    )
    assert json.loads(response.choices[0].message.content)["cheaper"] in ("first", "second")


def test_completions_endpoint(client: openai.OpenAI, reference_decoder) -> None:
    response = client.completions.create(model=MODEL_ID, prompt="Name a colour.", max_tokens=5)
    expected = reference_decoder.generate(
        messages=[{"role": "user", "content": "Name a colour."}], require_images=False, max_new_tokens=5
    )
    assert response.choices[0].text == expected.text
    assert response.usage.completion_tokens == 5
    streamed = list(
        client.completions.create(model=MODEL_ID, prompt="Name a colour.", max_tokens=5, stream=True)
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == expected.text


def test_unknown_openai_fields_are_ignored(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL_ID,
        messages=_two_images(),
        max_tokens=2,
        user="someone",
        parallel_tool_calls=False,
        frequency_penalty=0,
        metadata={"a": "b"},
        extra_body={"some_future_field": {"x": 1}},
    )
    assert response.usage.completion_tokens == 2


@pytest.mark.parametrize(
    ("kwargs", "status", "needle"),
    [
        ({"extra_body": {"alpha": -1}}, 400, "alpha"),
        ({"extra_body": {"mode": "nope"}}, 400, "mode"),
        ({"n": 2}, 400, "n=1"),
        ({"max_tokens": 10**6}, 400, "at most"),
        ({"temperature": -1}, 400, "temperature"),
        ({"model": "gpt-4o"}, 404, "not served"),
    ],
)
def test_bad_requests_get_openai_errors(
    client: openai.OpenAI, kwargs: dict, status: int, needle: str
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            **({"model": MODEL_ID, "messages": _two_images(), "max_tokens": 2} | kwargs)
        )
    assert caught.value.status_code == status
    assert needle in caught.value.message


def test_image_limits(client: openai.OpenAI) -> None:
    too_many = [
        {"role": "user", "content": [image_part(data_uri("red"))] * 9 + [{"type": "text", "text": "?"}]}
    ]
    with pytest.raises(openai.BadRequestError, match="at most 8"):
        client.chat.completions.create(model=MODEL_ID, messages=too_many, max_tokens=2)
    huge = [
        {"role": "user", "content": [image_part(data_uri("red", (600, 500))), {"type": "text", "text": "?"}]}
    ]
    with pytest.raises(openai.BadRequestError, match="250000"):
        client.chat.completions.create(model=MODEL_ID, messages=huge, max_tokens=2)
    broken = [
        {"role": "user", "content": [image_part("data:image/png;base64,AAAA"), {"type": "text", "text": "?"}]}
    ]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL_ID, messages=broken, max_tokens=2)
