"""The real ``openai`` SDK against a real ``focus serve`` process on loopback.

Answers are compared with the same request decoded directly by ``FocusDecoder`` in this process (greedy,
seeded noise): the server must not change what the engine says.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.server.conftest import (
    MODEL_ID,
    QUESTION,
    data_uri,
    image_part,
    two_image_messages,
    two_image_request,
)


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


def _direct(reference_decoder, **options) -> object:
    return reference_decoder.generate(**two_image_request(), **options)


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL_ID]
    assert client.models.retrieve(MODEL_ID).id == MODEL_ID


def test_chat_with_two_images_equals_the_direct_focus_decode(
    client: openai.OpenAI, reference_decoder
) -> None:
    response = client.chat.completions.create(
        model=MODEL_ID, messages=two_image_messages(), max_tokens=8, seed=0
    )
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
        model=MODEL_ID, messages=two_image_messages(), max_completion_tokens=6, extra_body={"mode": "vanilla"}
    )
    assert response.model_extra["focus"]["rule"] == "vanilla"
    assert (
        response.choices[0].message.content
        == _direct(reference_decoder, max_new_tokens=6, mode="vanilla").text
    )
    alpha = client.chat.completions.create(
        model=MODEL_ID,
        messages=two_image_messages(),
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
    whole = client.chat.completions.create(
        model=MODEL_ID, messages=two_image_messages(), max_tokens=8, seed=0
    )
    chunks = list(
        client.chat.completions.create(
            model=MODEL_ID,
            messages=two_image_messages(),
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
        messages=two_image_messages(),
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
        ({"n": 2}, 400, "n=2"),
        ({"frequency_penalty": 0.5}, 400, "frequency_penalty"),
        ({"max_tokens": 5, "max_completion_tokens": 6}, 400, "differently"),
        ({"extra_body": {"num_beams": 3}}, 400, "num_beams"),
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
            **({"model": MODEL_ID, "messages": two_image_messages(), "max_tokens": 2} | kwargs)
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


def _metric(base_url: str, name: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def test_a_client_that_leaves_mid_stream_frees_its_rows_at_once(server: str) -> None:
    """The default engine is the batched one; a stream the client drops frees its rows (seen in /metrics)."""
    assert httpx.get(f"{server}/health").json()["engine"] == "batched"
    body = {"model": MODEL_ID, "messages": two_image_messages(), "max_tokens": 2000, "stream": True}
    before = _metric(server, "focus_engine_tokens_generated_total")
    with httpx.Client(base_url=server, timeout=120) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            next(line for line in lines if '"content": "' in line and '"content": ""' not in line)
            assert _metric(server, "focus_rows_in_flight") == 3  # FOCUS over 2 images
            assert _metric(server, "focus_requests_active") == 1
            first = _metric(server, "focus_engine_tokens_generated_total")
            time.sleep(1.0)
            # Tokens count while the answer is still being written, not only when it ends.
            assert _metric(server, "focus_engine_tokens_generated_total") > first
            assert _metric(server, "focus_tokens_per_second") > 0
    deadline = time.monotonic() + 10
    while _metric(server, "focus_rows_in_flight") or _metric(server, "focus_requests_active"):
        assert time.monotonic() < deadline, "the rows of a disconnected client were not freed"
        time.sleep(0.05)
    generated = _metric(server, "focus_engine_tokens_generated_total") - before
    time.sleep(0.5)
    assert _metric(server, "focus_engine_tokens_generated_total") - before == generated < 2000
    assert _metric(server, "focus_queue_depth") == 0


def test_logprobs_of_the_combined_distribution(client: openai.OpenAI, reference_decoder) -> None:
    kwargs = {"model": MODEL_ID, "messages": two_image_messages(), "max_tokens": 5, "seed": 0}
    response = client.chat.completions.create(**kwargs, logprobs=True, top_logprobs=2)
    expected = _direct(reference_decoder, max_new_tokens=5, seed=0, top_logprobs=2)
    content = response.choices[0].logprobs.content
    assert "".join(e.token for e in content) == response.choices[0].message.content == expected.text
    assert [e.logprob for e in content] == pytest.approx([e.logprob for e in expected.logprobs], abs=1e-4)
    assert [[t.token for t in e.top_logprobs] for e in content] == [
        [t for _, t, _ in e.top] for e in expected.logprobs
    ]
    assert all(e.logprob <= 0 and len(e.top_logprobs) == 2 for e in content)
    assert client.chat.completions.create(**kwargs).choices[0].logprobs is None  # only when asked
    streamed = list(client.chat.completions.create(**kwargs, logprobs=True, top_logprobs=2, stream=True))
    last = [c for c in streamed if c.choices][-1].choices[0]
    assert [e.logprob for e in last.logprobs.content] == [e.logprob for e in content]
    legacy = client.completions.create(model=MODEL_ID, prompt="Name a colour.", max_tokens=4, logprobs=2)
    logprobs = legacy.choices[0].logprobs
    assert "".join(logprobs.tokens) == legacy.choices[0].text
    assert len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == len(logprobs.text_offset) == 4
    # (a dict per token, keyed by text: two top tokens that decode alike share one key, as with OpenAI)
    assert logprobs.text_offset[0] == 0 and all(1 <= len(top) <= 2 for top in logprobs.top_logprobs)
    for bad in ({"logprobs": "yes"}, {"top_logprobs": 99}):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(**kwargs, extra_body=bad)


def test_option_names_of_every_vocabulary(client: openai.OpenAI, reference_decoder) -> None:
    """The body goes through the library's one vocabulary: engine names as extra fields work too."""
    kwargs = {"model": MODEL_ID, "messages": two_image_messages(), "seed": 0}
    by_engine_name = client.chat.completions.create(**kwargs, extra_body={"max_new_tokens": 3})
    assert by_engine_name.usage.completion_tokens == 3
    greedy = client.chat.completions.create(**kwargs, max_tokens=6, temperature=0)
    assert greedy.model_extra["focus"]["do_sample"] is False
    assert greedy.choices[0].message.content == _direct(reference_decoder, max_new_tokens=6, seed=0).text
    at_least = client.chat.completions.create(**kwargs, max_tokens=6, extra_body={"min_new_tokens": 6})
    assert at_least.usage.completion_tokens == 6 and at_least.choices[0].finish_reason == "length"
