"""The OpenAI-compatible FastAPI app around one engine (``create_app``).

The event loop never decodes: request bodies are parsed and images decoded on a small thread pool, the
engine decodes on its own threads, and each request's text deltas are carried back to the loop by a pump
thread. A request is admitted only while the queue has room (else 429 with ``Retry-After``); a client that
goes away (closed connection, cancelled request) has its engine stream closed at once, which frees its place
in the queue or its rows in the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from focus_integrations.errors import ConstraintError, FocusError
from focus_integrations.server import protocol, responses
from focus_integrations.server.config import ServerConfig
from focus_integrations.server.engines import Engine, EngineStats, EngineStream, as_engine_stats, engine_kind
from focus_integrations.server.errors import APIError, bad_request, from_focus_error
from focus_integrations.server.media import load_request_image
from focus_integrations.server.metrics import CONTENT_TYPE, ServerMetrics

T = TypeVar("T")
_PREP_THREADS = 4  # JSON parsing and image decoding; the model never runs here


class _Disconnected(Exception):
    """The client went away before its answer was ready."""


class ServerState:
    """What the routes share: the engine, the config, admission counts, metrics, the preparation pool."""

    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self.engine = engine
        self.decoder = engine.decoder
        self.config = config
        self.limits = config.limits
        self.metrics = ServerMetrics(self.stats)
        self.started = int(time.time())
        self.accepted = 0  # admitted and not finished; touched on the event loop only
        self.closed = False
        self._prep = ThreadPoolExecutor(_PREP_THREADS, thread_name_prefix="focus-prep")
        self._count_lock = threading.Lock()

    def stats(self) -> EngineStats:
        return as_engine_stats(self.engine.stats())

    async def in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._prep, lambda: fn(*args, **kwargs))

    def admit(self) -> None:
        """Count the request in, or refuse it with a 429 when the queue is full."""
        waiting = self.accepted - self.stats().active
        if waiting >= self.limits.max_queued_requests:
            self.metrics.rejected.labels("queue_full").inc()
            retry = max(1, min(60, math.ceil(self.metrics.typical_latency_s())))
            raise APIError(
                429,
                f"the server is at capacity ({waiting} requests waiting); retry in {retry} s",
                type="rate_limit_exceeded",
                code="queue_full",
                headers={"Retry-After": str(retry)},
            )
        self.accepted += 1

    def release(self) -> None:
        self.accepted -= 1

    def load_image(self, url: Any) -> Any:
        return load_request_image(url, self.config.images, self.limits.max_image_pixels)

    def check_total_tokens(self, request: protocol.EngineRequest) -> None:
        """Prompt + output within ``max_total_tokens`` (counted with the model's processor, images included)."""
        limit = self.limits.max_total_tokens
        if limit is None:
            return
        with self._count_lock:
            prompt = self.decoder.count_tokens(request.messages, tools=request.template_tools)
        wanted = prompt + request.options["max_new_tokens"]
        if wanted > limit:
            raise bad_request(
                f"the prompt has {prompt} tokens and asks for up to {request.options['max_new_tokens']} more "
                f"({wanted}); this server allows {limit} tokens per request",
                code="context_length_exceeded",
            )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._prep.shutdown(wait=False, cancel_futures=True)
            self.engine.close()


# ---------------------------------------------------------------------------------------------- streams


class _Deltas:
    """An engine stream read on a pump thread and consumed on the event loop (``await next_delta()``)."""

    def __init__(self, stream: EngineStream) -> None:
        self.stream = stream
        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.first_token_at: float | None = None
        self._closed = False
        threading.Thread(target=self._pump, name="focus-pump", daemon=True).start()

    def _post(self, kind: str, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, (kind, value))
        except RuntimeError:  # the loop is gone: nobody is listening any more
            self.stream.close()

    def _pump(self) -> None:
        try:
            for delta in self.stream:
                self._post("delta", delta)
        except BaseException as exc:  # re-raised on the loop
            self._post("error", exc)
        else:
            self._post("end", None)

    async def next_delta(self) -> str | None:
        """The next text delta, or None at the end; raises the decode's error."""
        kind, value = await self._items.get()
        if kind == "error":
            raise value
        if kind == "end":
            return None
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        return value

    def close(self) -> None:
        """Cancel the request, without waiting on the event loop: an engine's ``close()`` may wait for its
        current step (the batched engine returns once the rows are free) while other streams need the loop."""
        if not self._closed:
            self._closed = True
            threading.Thread(target=self.stream.close, name="focus-close", daemon=True).start()


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``work``, unless the client disconnects first (then ``_Disconnected``; ``work`` is cancelled)."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.cancelled() or not task.done():
        raise _Disconnected
    return task.result()


def _sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


class _CleanupStreamingResponse(StreamingResponse):
    """A streaming response that runs ``cleanup`` however it ends (finished, client gone, never started)."""

    def __init__(self, content: AsyncIterator[str], cleanup: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._cleanup = cleanup

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._cleanup()


class _HeaderMiddleware:
    """Adds one response header (plain ASGI: streaming and disconnects pass through untouched)."""

    def __init__(self, app: Any, name: bytes, value: bytes) -> None:
        self.app, self.header = app, (name, value)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_header)


# ---------------------------------------------------------------------------------------------- the app


def create_app(engine: Engine, config: ServerConfig) -> FastAPI:
    """The OpenAI-compatible app serving ``engine``; the app owns the engine and closes it on shutdown."""
    state = ServerState(engine, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(title="focus-integrations", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.focus = state
    # Which process answered (several replicas behind one proxy: Ray Serve, a load balancer).
    served_by = f"{socket.gethostname()}:{os.getpid()}"

    app.add_middleware(_HeaderMiddleware, name=b"x-focus-served-by", value=served_by.encode())

    @app.exception_handler(APIError)
    async def _api_error(request: Request, err: APIError) -> JSONResponse:
        if request.url.path.startswith("/v1/"):
            state.metrics.requests.labels(request.url.path, str(err.status)).inc()
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(FocusError)
    async def _focus_error(request: Request, err: FocusError) -> JSONResponse:
        return await _api_error(request, from_focus_error(err))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        return await _api_error(request, bad_request(str(err)))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if err.status_code == 404 else "invalid_request_error"
        return await _api_error(request, APIError(err.status_code, str(err.detail), type=kind))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, err: Exception) -> JSONResponse:
        return await _api_error(request, APIError(500, f"internal server error: {err}", type="server_error"))

    async def authorized(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not (
            scheme.lower() == "bearer"
            and hmac.compare_digest(token.strip().encode(), config.api_key.encode())
        ):
            raise APIError(
                401, "invalid or missing API key (Authorization: Bearer <key>)", code="invalid_api_key"
            )

    auth = [Depends(authorized)]

    @app.get("/health")
    async def health() -> JSONResponse:
        if state.closed:
            return JSONResponse({"status": "closed"}, status_code=503)
        return JSONResponse({"status": "ok", "model": config.model_id, "engine": engine_kind(engine)})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)

    def model_card() -> dict[str, Any]:
        return {
            "id": config.model_id,
            "object": "model",
            "created": state.started,
            "owned_by": "focus-integrations",
        }

    @app.get("/v1/models", dependencies=auth)
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}", dependencies=auth)
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != config.model_id:
            raise APIError(
                404, f"model {model_id!r} is not served here", type="not_found_error", code="model_not_found"
            )
        return model_card()

    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat_completions(request: Request) -> Response:
        return await _serve(request, "chat")

    @app.post("/v1/completions", dependencies=auth)
    async def completions(request: Request) -> Response:
        return await _serve(request, "completions")

    async def _body(request: Request) -> dict[str, Any]:
        limit = state.limits.max_request_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise APIError(413, f"request body is larger than {limit} bytes", code="request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise APIError(413, f"request body is larger than {limit} bytes", code="request_too_large")
            chunks.append(chunk)
        try:
            body = await state.in_thread(json.loads, b"".join(chunks))
        except (ValueError, RecursionError) as err:  # RecursionError: nesting deeper than the parser goes
            raise bad_request(f"the request body is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        model_id = body.get("model")
        if model_id is not None and model_id != config.model_id:
            raise APIError(
                404,
                f"model {model_id!r} is not served here; this server serves {config.model_id!r}",
                type="not_found_error",
                param="model",
                code="model_not_found",
            )
        return body

    def _prepare(body: dict[str, Any], kind: str) -> tuple[protocol.EngineRequest, EngineStream]:
        if kind == "chat":
            prepared = protocol.chat_request(
                body, state.decoder, state.limits, state.load_image, config.model_id
            )
        else:
            prepared = protocol.completion_request(body, state.decoder, state.limits, config.model_id)
        state.check_total_tokens(prepared)
        try:
            return prepared, state.engine.submit(**prepared.submit_kwargs())
        except ConstraintError as err:  # the grammar could not be built: say which field asked for it
            raise from_focus_error(
                err, "tool_choice" if prepared.forced_call else "response_format"
            ) from None

    async def _serve(request: Request, kind: str) -> Response:
        started = time.monotonic()
        endpoint = f"/v1/{'chat/' if kind == 'chat' else ''}completions"
        if state.closed:
            raise APIError(503, "the server is shutting down", type="server_error")
        body = await _body(request)
        state.admit()
        deltas: _Deltas | None = None
        handed_over = False
        try:
            prepared, stream = await _unless_disconnected(request, state.in_thread(_prepare, body, kind))
            deltas = _Deltas(stream)
            # The first delta before any byte is sent: errors found at the start of decoding (context length,
            # processor) still get their 4xx status, and a client that leaves while queued is noticed.
            first = await _unless_disconnected(request, deltas.next_delta())
            if prepared.stream:
                events = _chat_events if kind == "chat" else _completion_events

                def cleanup() -> None:
                    deltas.close()
                    state.release()

                handed_over = True
                return _CleanupStreamingResponse(events(prepared, deltas, first, started, endpoint), cleanup)
            text_parts = [first] if first else []
            while first is not None:
                first = await _unless_disconnected(request, deltas.next_delta())
                if first:
                    text_parts.append(first)
            output = deltas.stream.output
            _observe(endpoint, started, deltas, output)
            if kind == "completions":
                return JSONResponse(responses.completion_body(prepared, output, responses.new_id("cmpl")))
            text, parser = "".join(text_parts), prepared.tool_parser()
            end = responses.finish_chat(prepared, parser, output, parser.feed(text) if parser else text)
            return JSONResponse(
                responses.chat_completion_body(prepared, output, end, responses.new_id("chatcmpl"))
            )
        except _Disconnected:
            state.metrics.rejected.labels("client_disconnected").inc()
            return Response(status_code=499)
        finally:
            if not handed_over:
                if deltas is not None:
                    deltas.close()
                state.release()

    def _observe(endpoint: str, started: float, deltas: _Deltas, output: Any) -> None:
        state.metrics.observe(
            endpoint,
            started=started,
            first_token=deltas.first_token_at,
            prompt_tokens=output.usage.input_tokens,
            output_tokens=output.usage.output_tokens,
        )
        state.metrics.requests.labels(endpoint, "200").inc()

    async def _chat_events(
        prepared: protocol.EngineRequest, deltas: _Deltas, first: str | None, started: float, endpoint: str
    ) -> AsyncIterator[str]:
        response_id, created = responses.new_id("chatcmpl"), int(time.time())

        def chunk(
            delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None, logprobs: Any = None
        ) -> str:
            return _sse(responses.chat_chunk(prepared, response_id, created, delta, finish, usage, logprobs))

        yield chunk({"role": "assistant", "content": ""})
        parser = prepared.tool_parser()
        shown: list[str] = []
        try:
            delta = first
            while delta is not None:
                visible = parser.feed(delta) if parser else delta
                if visible:
                    shown.append(visible)
                    yield chunk({"content": visible})
                delta = await deltas.next_delta()
            output = deltas.stream.output
            end = responses.finish_chat(prepared, parser, output, "".join(shown))
            if end.tail:
                yield chunk({"content": end.tail})
            if end.calls:
                yield chunk({"tool_calls": [{"index": i, **call} for i, call in enumerate(end.calls)]})
            # Deltas are text, not tokens: the answer's log-probabilities ride on its last chunk.
            yield chunk({}, end.finish_reason, logprobs=responses.chat_logprobs(prepared, output))
            if prepared.include_usage:
                yield chunk(None, usage=responses.usage_body(output))
            _observe(endpoint, started, deltas, output)
        except Exception as err:  # the status line is sent already: report in the stream, as OpenAI does
            yield _sse(_stream_error(err))
        yield _sse("[DONE]")

    async def _completion_events(
        prepared: protocol.EngineRequest, deltas: _Deltas, first: str | None, started: float, endpoint: str
    ) -> AsyncIterator[str]:
        response_id, created = responses.new_id("cmpl"), int(time.time())
        try:
            delta = first
            while delta is not None:
                if delta:
                    yield _sse(responses.completion_chunk(prepared, response_id, created, delta))
                delta = await deltas.next_delta()
            output = deltas.stream.output
            logprobs = responses.completion_logprobs(prepared, output)
            yield _sse(
                responses.completion_chunk(
                    prepared, response_id, created, "", output.finish_reason, None, logprobs
                )
            )
            if prepared.include_usage:
                usage = responses.usage_body(output)
                yield _sse(responses.completion_chunk(prepared, response_id, created, None, usage=usage))
            _observe(endpoint, started, deltas, output)
        except Exception as err:
            yield _sse(_stream_error(err))
        yield _sse("[DONE]")

    return app


def _stream_error(err: Exception) -> dict[str, Any]:
    if isinstance(err, FocusError):
        return from_focus_error(err).body()
    return APIError(500, f"internal server error: {err}", type="server_error").body()
