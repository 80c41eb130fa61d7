"""The app's own rules, in-process on a real uvicorn socket: auth, limits, admission (429), disconnects,
error mapping, metrics. The engine is the real SerialEngine on the tiny checkpoint; where a test needs a
request to stay queued, a gate holds the engine's streams before their first token."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time

import httpx
import openai
import pytest

from focus_integrations import errors as core_errors
from focus_integrations.batching import BatchEngine
from focus_integrations.server import Limits, SerialEngine, ServerConfig, create_app
from focus_integrations.server.errors import from_focus_error
from focus_integrations.testing.adversarial_serving import serving
from tests.server.conftest import data_uri, image_part, wait_for


class GatedEngine(SerialEngine):
    """The real serial engine, but its worker waits at ``gate`` before decoding each request."""

    def __init__(self, decoder) -> None:
        self.gate = threading.Event()
        super().__init__(decoder)

    def _decode(self, stream) -> None:
        self.gate.wait(timeout=60)
        super()._decode(stream)


def chat_body(max_tokens: int = 4, **extra) -> dict:
    content = [image_part(data_uri("red")), image_part(data_uri("blue")), {"type": "text", "text": "Which?"}]
    return {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, **extra}


def test_every_focus_error_is_a_4xx() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(core_errors, inspect.isclass)
        if issubclass(obj, core_errors.FocusError)
    ]
    assert len(classes) >= 8
    for cls in classes:
        assert 400 <= from_focus_error(cls("bad")).status < 500, cls
    assert (
        from_focus_error(core_errors.ContextLengthError("x")).body()["error"]["code"]
        == "context_length_exceeded"
    )


def test_api_key_is_required_when_set(reference_decoder) -> None:
    app = create_app(SerialEngine(reference_decoder), ServerConfig(model_id="m", api_key="s3cret"))
    with serving(app) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        denied = httpx.post(
            f"{url}/v1/chat/completions", json=chat_body(), headers={"Authorization": "s3cret"}
        )
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).models.list()
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        assert client.chat.completions.create(model="m", **chat_body()).usage.completion_tokens == 4


def test_full_queue_gets_429_with_retry_after(reference_decoder) -> None:
    engine = GatedEngine(reference_decoder)
    app = create_app(engine, ServerConfig(model_id="m", limits=Limits(max_queued_requests=1)))
    with serving(app) as url:

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                first = asyncio.ensure_future(client.post("/v1/chat/completions", json=chat_body()))
                await asyncio.to_thread(wait_for, lambda: engine.stats().active == 1)
                second = asyncio.ensure_future(client.post("/v1/chat/completions", json=chat_body()))
                await asyncio.to_thread(wait_for, lambda: engine.stats().queued == 1)
                third = await client.post("/v1/chat/completions", json=chat_body())
                engine.gate.set()
                return [await first, await second, third]

        first, second, third = asyncio.run(scenario())
        assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
        assert third.json()["error"]["type"] == "rate_limit_exceeded"
        assert int(third.headers["Retry-After"]) >= 1
        metrics = httpx.get(f"{url}/metrics").text
        assert 'focus_rejected_requests_total{reason="queue_full"} 1.0' in metrics


def test_a_client_that_leaves_frees_its_place_and_its_rows(reference_decoder) -> None:
    engine = GatedEngine(reference_decoder)
    app = create_app(engine, ServerConfig(model_id="m", limits=Limits(max_output_tokens=4000)))
    with serving(app) as url:
        # Queued (not decoding yet), then gone: its place is freed without any decoding.
        async def leave_while_queued() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                task = asyncio.ensure_future(client.post("/v1/chat/completions", json=chat_body()))
                await asyncio.to_thread(wait_for, lambda: engine.stats().active + engine.stats().queued == 1)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

        asyncio.run(leave_while_queued())
        wait_for(lambda: engine.stats().queued == 0 and app.state.focus.accepted == 0)
        engine.gate.set()
        # Decoding a long streamed answer, then gone: the decode stops at once (far fewer tokens than asked).
        with httpx.Client(base_url=url, timeout=60) as client:
            with client.stream("POST", "/v1/chat/completions", json=chat_body(3000, stream=True)) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                next(line for line in lines if '"content": "' in line and '"content": ""' not in line)
        started = time.monotonic()
        wait_for(lambda: engine.stats().active == 0 and not reference_decoder.busy, timeout=10)
        assert time.monotonic() - started < 5
        assert engine.stats().tokens_generated < 3000
        assert app.state.focus.accepted == 0
        # The server still answers afterwards.
        assert httpx.post(f"{url}/v1/chat/completions", json=chat_body()).status_code == 200


def test_request_size_and_token_limits(reference_decoder) -> None:
    limits = Limits(max_request_bytes=20_000, max_total_tokens=70)
    app = create_app(SerialEngine(reference_decoder), ServerConfig(model_id="m", limits=limits))
    with serving(app) as url:
        big = chat_body() | {"padding": "x" * 30_000}
        response = httpx.post(f"{url}/v1/chat/completions", json=big)
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
        response = httpx.post(f"{url}/v1/chat/completions", json=chat_body())  # 75 prompt tokens + 4
        assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
        text_only = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}  # 59 + 2
        assert httpx.post(f"{url}/v1/chat/completions", json=text_only).status_code == 200
        response = httpx.post(f"{url}/v1/chat/completions", content=b"{not json")
        assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]


def test_metrics_after_requests(reference_decoder) -> None:
    app = create_app(SerialEngine(reference_decoder), ServerConfig(model_id="m"))
    with serving(app) as url:
        for _ in range(2):
            assert httpx.post(f"{url}/v1/chat/completions", json=chat_body(5)).status_code == 200
        assert httpx.post(f"{url}/v1/chat/completions", json=chat_body(n=3)).status_code == 400
        metrics = httpx.get(f"{url}/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        for needle in (
            'focus_request_latency_seconds_count{endpoint="/v1/chat/completions"} 2.0',
            'focus_time_to_first_token_seconds_count{endpoint="/v1/chat/completions"} 2.0',
            'focus_requests_total{endpoint="/v1/chat/completions",status="200"} 2.0',
            'focus_requests_total{endpoint="/v1/chat/completions",status="400"} 1.0',
            "focus_output_tokens_total 10.0",
            "focus_queue_depth 0.0",
            "focus_rows_in_flight 0.0",
            "focus_tokens_per_second",
        ):
            assert needle in text, needle


def test_serial_engine_answers_equal_direct_decodes_and_close_cancels(reference_decoder) -> None:
    engine = GatedEngine(reference_decoder)
    try:
        kwargs = [
            {"prompt": "Hi", "images": None, "require_images": False, "max_new_tokens": 4},
            {"prompt": "Hello there", "images": None, "require_images": False, "max_new_tokens": 6},
        ]
        streams = [engine.submit(**k) for k in kwargs]
        dropped = engine.submit(**kwargs[0])
        assert engine.stats().queued + engine.stats().active == 3
        dropped.close()
        assert list(dropped) == []
        engine.gate.set()
        for stream, k in zip(streams, kwargs):
            text = "".join(stream)
            assert text == stream.output.text == reference_decoder.generate(**k).text
        wait_for(lambda: engine.stats().active == 0)
        assert engine.stats().tokens_generated == 10
    finally:
        engine.close()


def test_a_constraint_the_tokenizer_cannot_spell_is_a_400() -> None:
    """The bundled default model's word-level vocabulary has no '{': structured answers are refused, clearly."""
    from focus_integrations import FocusDecoder
    from focus_integrations.cli import resolve_model

    decoder = FocusDecoder.from_pretrained(resolve_model(None))
    app = create_app(BatchEngine(decoder), ServerConfig(model_id="m"))
    tools = [{"type": "function", "function": {"name": "price", "parameters": {"type": "object"}}}]
    with serving(app) as url:
        for extra, param in (
            ({"response_format": {"type": "json_object"}}, "response_format"),
            ({"tools": tools, "tool_choice": "required"}, "tool_choice"),
        ):
            response = httpx.post(f"{url}/v1/chat/completions", json=chat_body(**extra))
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert (error["code"], error["param"]) == ("response_format_unsupported", param)
            assert "tokenizer" in error["message"]
        assert httpx.get(f"{url}/metrics").text.count("focus_rows_in_flight 0.0") == 1
        assert httpx.post(f"{url}/v1/chat/completions", json=chat_body()).status_code == 200
