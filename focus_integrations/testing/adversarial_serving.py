"""Adversarial cases of the serving entry points, judged like the library's (``adversarial.judge``).

* ``run_batch``: ``FocusDecoder.generate_batch`` and ``BatchEngine.submit``, one bad request among good ones.
  The bad one must fail alone (a documented error in its place) and every good one must get exactly the
  answer it gets decoded alone; a good request that loses its answer counts as a good item lost.
* ``run_server``: the OpenAI server (``server.create_app`` on the batched engine, on a real loopback socket):
  bad bodies, every image_url form, garbage and oversized base64, wrong types for the option fields,
  ``response_format`` and ``tools``. A bad request must get a 4xx with an OpenAI-shaped error body; a 5xx is
  counted as a raw traceback, and a request still open at its deadline as a hang.
* ``run_call_arguments``: the engine's own call arguments (``tools``, ``prompt``, the request list of
  ``generate_batch``, ``max_rows`` / ``join``) of a wrong type or value.

The command-line entry points (``focus eval``, ``focus serve``, ``focus index``, ``focus query``) are in
``adversarial_cli``.

The case tables are here (they are only used here); the values shared with the library's cases come from
``adversarial_cases``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from focus_integrations.errors import FocusError
from focus_integrations.testing.adversarial import (
    Lost,
    Refused,
    Tally,
    judge,
    property_of,
)
from focus_integrations.testing.adversarial_cases import (
    BAD,
    BAD_OPTIONS,
    CONTENT_BLOCKS,
    EITHER,
    GOOD,
    good_image,
    png_bytes,
)

SERVER_DEADLINE_S = 30.0  # one request, from the body sent to the last byte read

# ------------------------------------------------------------------------------------------------ batches

_GOOD_REQUESTS = [
    {"images": [good_image(11), good_image(12)], "prompt": "Which is red?", "max_new_tokens": 4},
    {"images": [good_image(13)], "prompt": "Describe it.", "max_new_tokens": 3, "mode": "vanilla"},
]


@st.composite
def bad_requests(draw: Any) -> tuple[dict[str, Any], str]:
    """One request with one bad value: an option, or a content block of its messages."""
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(BAD_OPTIONS)))
        value = draw(st.sampled_from(BAD_OPTIONS[name]))
        request = {"images": [good_image(14), good_image(15)], "prompt": "Which?", "max_new_tokens": 3}
        return {**request, name: value}, f"{name}={value!r}"
    bad_blocks = [block for block in CONTENT_BLOCKS if block[2] == BAD]
    name, make, _ = draw(st.sampled_from(bad_blocks))
    content = [{"type": "image", "image": good_image(16)}, make(), {"type": "text", "text": "Which?"}]
    return {"messages": [{"role": "user", "content": content}], "max_new_tokens": 3}, name


def run_batch(decoder: Any, tally: Tally, examples: int = 20) -> None:
    """A bad request at each position of a batch of good ones, through generate_batch and BatchEngine."""
    from focus_integrations.batching import BatchEngine

    solo = [decoder.generate(**request).token_ids for request in _GOOD_REQUESTS]

    def judged(outputs: list[Any], position: int) -> Any:
        """Raise ``Refused`` if the bad request failed (with the good answers lost), else count the losses."""
        goods = outputs[:position] + outputs[position + 1 :]
        lost = sum(
            not hasattr(out, "token_ids") or out.token_ids != want
            for out, want in zip(goods, solo, strict=True)
        )
        bad = outputs[position]
        if isinstance(bad, FocusError):
            raise Refused(f"{type(bad).__name__}: {str(bad)[:120]}", lost)
        if isinstance(bad, BaseException):
            raise bad
        return Lost(lost)

    def among_goods(drawn: tuple) -> tuple[list[dict[str, Any]], int, str]:
        (request, shown), position = drawn
        requests = [dict(r) for r in _GOOD_REQUESTS]
        requests.insert(position, request)
        return requests, position, shown

    cases = st.tuples(bad_requests(), st.integers(0, 2))

    @property_of(cases, examples)
    def batch(drawn: tuple) -> None:
        requests, position, shown = among_goods(drawn)

        def call() -> Any:
            try:
                outputs = decoder.generate_batch(requests, return_exceptions=True)
            except FocusError as err:  # the whole batch refused for one request: every good answer lost
                raise Refused(f"the batch raised {type(err).__name__}: {str(err)[:100]}", len(solo)) from err
            return judged(list(outputs), position)

        tally.add(judge("generate_batch", f"at {position}: {shown}", BAD, call))

    engine = BatchEngine(decoder, max_rows=16)

    @property_of(cases, examples)
    def submit(drawn: tuple) -> None:
        requests, position, shown = among_goods(drawn)

        def call() -> Any:
            streams: list[Any] = []
            for r in requests:  # all queued before any is read: they decode together
                try:
                    streams.append(engine.submit(**r))
                except FocusError as err:  # refused at submit, as documented: the others run on
                    streams.append(err)
            outputs: list[Any] = []
            for s in streams:
                if isinstance(s, BaseException):
                    outputs.append(s)
                    continue
                try:
                    "".join(s)
                    outputs.append(s.output)
                except FocusError as err:
                    outputs.append(err)
            return judged(outputs, position)

        tally.add(judge("BatchEngine.submit", f"at {position}: {shown}", BAD, call))

    try:
        batch()
        submit()
    finally:
        engine.close()


# ------------------------------------------------------------------------------------------------- server


def run_call_arguments(decoder: Any, tally: Tally) -> None:
    """The engine's call arguments besides the options, each wrong in one way (the options are
    ``adversarial.run_every_bad_option``'s)."""
    from focus_integrations.batching import BatchEngine

    images = [good_image(21), good_image(22)]
    good = {"images": images, "prompt": "Which?", "max_new_tokens": 2}
    cases: list[tuple[str, Any]] = [
        ("tools=5", lambda: decoder.generate(**good, tools=5)),
        ("tools='f'", lambda: decoder.generate(**good, tools="f")),
        ("tools={...} (one dict, not a list)", lambda: decoder.generate(**good, tools={"type": "function"})),
        ("tools=[5]", lambda: decoder.generate(**good, tools=[5])),
        ("prompt=5", lambda: decoder.generate(images=images, prompt=5, max_new_tokens=2)),
        ("neither prompt nor messages", lambda: decoder.generate(images=images, max_new_tokens=2)),
        ("both prompt and messages",
         lambda: decoder.generate(**good, messages=[{"role": "user", "content": "x"}])),
        ("messages=5", lambda: decoder.generate(messages=5, max_new_tokens=2)),
        ("messages='hi'", lambda: decoder.generate(messages="hi", max_new_tokens=2)),
        ("images=5", lambda: decoder.generate(images=5, prompt="Which?", max_new_tokens=2)),
        ("images=[[]] (an empty group)", lambda: decoder.generate(images=[[]], prompt="Which?", max_new_tokens=2)),
        ("videos=[b'garbage']", lambda: decoder.generate(videos=[b"garbage"], prompt="What?", max_new_tokens=2)),
        ("assistant_prefix=5", lambda: decoder.generate(**good, assistant_prefix=5)),
        ("require_images='no'", lambda: decoder.generate(prompt="x", require_images="no", max_new_tokens=2)),
        ("score candidates=5", lambda: decoder.score(images=images, prompt="Which?", candidates=5)),
        ("score candidates=['a', None]", lambda: decoder.score(images=images, prompt="Which?", candidates=["a", None])),
        ("score candidates=['']", lambda: decoder.score(images=images, prompt="Which?", candidates=[""])),
        ("generate_batch(5)", lambda: decoder.generate_batch(5)),
        ("generate_batch('ab')", lambda: decoder.generate_batch("ab")),
        ("generate_batch({...})", lambda: decoder.generate_batch(good)),
        ("generate_batch([5])", lambda: decoder.generate_batch([5])),
        ("generate_batch max_rows=0", lambda: decoder.generate_batch([good], max_rows=0)),
        ("generate_batch join='bogus'", lambda: decoder.generate_batch([good], join="bogus")),
        ("BatchEngine max_rows=0", lambda: BatchEngine(decoder, max_rows=0)),
        ("BatchEngine max_rows='x'", lambda: BatchEngine(decoder, max_rows="x")),
        ("BatchEngine join='bogus'", lambda: BatchEngine(decoder, join="bogus")),
    ]  # fmt: skip
    for name, call in cases:
        tally.add(judge("engine (call arguments)", name, BAD, call))


class _HTTPRefusal(FocusError):
    """The server answered a 4xx with an OpenAI-shaped error body (its documented refusal)."""


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _forged_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression-bomb header)."""
    data = bytearray(png_bytes(size=8))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


def _chat(*content: Any, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": list(content)}], "max_tokens": 3, **fields}


def _image(url: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


_TEXT = {"type": "text", "text": "Which image is red?"}

# Option fields of the body and values of a wrong type or range for each (None: not set, always fine).
_NUMBER_FIELDS = ["temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "top_k", "alpha",
                  "noise_scale", "repetition_penalty", "min_p", "top_logprobs", "presence_penalty",
                  "frequency_penalty", "n"]  # fmt: skip
_WRONG_NUMBERS: list[tuple[str, Any]] = [
    ("a string", "x"),
    ("a list", []),
    ("an object", {}),
    ("true", True),
    ("-5", -5),
    ("NaN", "@NaN"),  # '@...' is written raw into the JSON text (Python's json accepts NaN and Infinity)
    ("Infinity", "@Infinity"),
    ("1e400", "@1e400"),
]
_OTHER_FIELDS: dict[str, list[Any]] = {
    "stop": [5, [5], {}, [""]],
    "stream": ["yes", 1, {}],
    "stream_options": ["x", {"include_usage": "yes"}],
    "logprobs": ["yes", 2],
    "logit_bias": ["x", {"5": 10}],
    "mode": [5, "greedy"],
    "noise": [5, "bogus", ["gray"]],
    "do_sample": ["false", 1],
    "response_format": [
        "json",
        5,
        {},
        {"type": "bogus"},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": 5},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": 5}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "bogus"}}},
        {"type": "regex", "regex": "("},
        {"type": "choice", "choice": []},
        {"type": "choice", "choice": "yes"},
    ],
    "tools": [
        "x",
        [5],
        [{}],
        [{"type": "function"}],
        [{"type": "function", "function": {"name": 5}}],
        [{"type": "function", "function": {"name": "f", "parameters": 5}}],
    ],
    "tool_choice": ["bogus", 5, "required", {"type": "function", "function": {"name": "nope"}}],
    "messages": [
        "hi",
        [],
        [5],
        [{"content": "x"}],
        [{"role": "wizard", "content": "x"}],
        [{"role": "user", "content": 5}],
        [{"role": "user"}],
        [{"role": "user", "content": [5]}],
        [{"role": "user", "content": [{"type": "bogus"}]}],
        [{"role": "user", "content": "why \ud800?"}],
    ],  # fmt: skip
    "model": ["not-this-model", 5],
}
_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def server_cases(media: Path) -> list[tuple[str, str, Any, str]]:
    """(name, path, body, label): the body is a dict (sent as JSON) or raw bytes."""
    png = png_bytes()
    local = media / "red.png"
    local.write_bytes(png)
    (media.parent / "secret.png").write_bytes(png)
    chat = "/v1/chat/completions"
    cases: list[tuple[str, str, Any, str]] = [
        ("text only", chat, {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}, GOOD),
        ("two data-URI images", chat, _chat(_image(_data_uri(png)), _image(_data_uri(png)), _TEXT), GOOD),
        ("image_url as a string", chat, _chat({"type": "image_url", "image_url": _data_uri(png)}, _TEXT), GOOD),
        ("detail low", chat, _chat(_image(_data_uri(png), detail="low"), _TEXT), GOOD),
        ("file URL in the media folder", chat, _chat(_image(local.as_uri()), _TEXT), GOOD),
        ("stream with usage", chat,
         _chat(_image(_data_uri(png)), _TEXT, stream=True, stream_options={"include_usage": True}), GOOD),
        ("sampling options", chat, _chat(_TEXT, temperature=0.7, top_p=0.9, seed=3, stop="END"), GOOD),
        ("FOCUS options", chat, _chat(_image(_data_uri(png)), _image(_data_uri(png)), _TEXT, alpha=0.2), GOOD),
        ("developer role", chat, {"messages": [{"role": "developer", "content": "Be brief."},
                                               {"role": "user", "content": "Hi"}], "max_tokens": 3}, GOOD),
        ("response_format text", chat, _chat(_TEXT, response_format={"type": "text"}), GOOD),
        ("unknown field ignored", chat, _chat(_TEXT, user="u1", metadata={"a": "b"}), GOOD),
        ("completions", "/v1/completions", {"prompt": "Hi", "max_tokens": 3}, GOOD),
        ("max_tokens over the cap", chat, _chat(_TEXT, max_tokens=10**9), EITHER),
        ("only an assistant turn", chat, {"messages": [{"role": "assistant", "content": "x"}]}, EITHER),
        ("detail bogus", chat, _chat(_image(_data_uri(png), detail="bogus"), _TEXT), EITHER),
        # bodies that are not a chat request
        ("empty body", chat, b"", BAD),
        ("truncated JSON", chat, b'{"messages": [', BAD),
        ("not UTF-8", chat, b"\xff\xfe\x00{", BAD),
        ("a JSON list", chat, b"[]", BAD),
        ("JSON null", chat, b"null", BAD),
        ("a JSON number", chat, b"42", BAD),
        ("nested 100000 deep", chat, b"[" * 100_000 + b"]" * 100_000, BAD),
        ("no messages", chat, {"max_tokens": 3}, BAD),
        ("completions without prompt", "/v1/completions", {"max_tokens": 3}, BAD),
        ("completions prompt a number", "/v1/completions", {"prompt": 5, "max_tokens": 3}, BAD),
        ("completions logprobs 9", "/v1/completions", {"prompt": "Hi", "max_tokens": 3, "logprobs": 9}, BAD),
        # image_url forms
        ("image_url missing", chat, _chat({"type": "image_url"}, _TEXT), BAD),
        ("image_url a number", chat, _chat({"type": "image_url", "image_url": 5}, _TEXT), BAD),
        ("image_url without url", chat, _chat({"type": "image_url", "image_url": {}}, _TEXT), BAD),
        ("url a number", chat, _chat(_image(5), _TEXT), BAD),
        ("url empty", chat, _chat(_image(""), _TEXT), BAD),
        ("remote URL (refused)", chat, _chat(_image("http://127.0.0.1:9/x.png"), _TEXT), BAD),
        ("ftp URL", chat, _chat(_image("ftp://127.0.0.1/x.png"), _TEXT), BAD),
        ("file URL outside the media folder", chat, _chat(_image("file:///etc/passwd"), _TEXT), BAD),
        ("file URL escaping the media folder", chat,
         _chat(_image(f"file://{media}/../secret.png"), _TEXT), BAD),
        ("file URL missing", chat, _chat(_image((media / "nope.png").as_uri()), _TEXT), BAD),
        ("base64 not base64", chat, _chat(_image("data:image/png;base64,!!!!"), _TEXT), BAD),
        ("base64 of garbage", chat, _chat(_image(_data_uri(bytes(range(256)) * 8)), _TEXT), BAD),
        ("base64 of a truncated PNG", chat, _chat(_image(_data_uri(png[:60])), _TEXT), BAD),
        ("base64 of an empty file", chat, _chat(_image("data:image/png;base64,"), _TEXT), BAD),
        ("data URI of text", chat, _chat(_image("data:text/plain;base64,aGVsbG8="), _TEXT), BAD),
        ("data URI not base64", chat, _chat(_image("data:image/png,rawbytes"), _TEXT), BAD),
        ("data URI of a bomb header", chat, _chat(_image(_data_uri(_forged_png(60_000, 60_000))), _TEXT), BAD),
        ("huge base64 (over the body limit)", chat,
         _chat(_image("data:image/png;base64," + "A" * (3 << 20)), _TEXT), BAD),
        ("too many images", chat, _chat(*[_image(_data_uri(png))] * 9, _TEXT), BAD),
        ("image in a system turn", chat,
         {"messages": [{"role": "system", "content": [_image(_data_uri(png))]},
                       {"role": "user", "content": "Hi"}], "max_tokens": 3}, EITHER),
    ]  # fmt: skip
    for field in _NUMBER_FIELDS:
        for shown, value in _WRONG_NUMBERS:
            cases.append((f"{field} {shown}", chat, _chat(_TEXT, **{field: value}), BAD))
    for field, values in _OTHER_FIELDS.items():
        for value in values:
            body = (
                {"messages": value, "max_tokens": 3}
                if field == "messages"
                else _chat(_TEXT, **{field: value})
            )
            if field == "tool_choice" and value != "required":
                body["tools"] = [_TOOL]
            cases.append((f"{field}={json.dumps(value)[:40]}", chat, body, BAD))
    cases.append(("stream with a bad option", chat, _chat(_TEXT, stream=True, temperature="x"), BAD))
    cases.append(
        ("stream with a bad image", chat, _chat(_image(_data_uri(png[:60])), _TEXT, stream=True), BAD)
    )
    return cases


def _encode(body: Any) -> bytes:
    """JSON text of ``body``; string values starting with '@' are written raw (NaN, Infinity, 1e400)."""
    if isinstance(body, bytes):
        return body
    raw: dict[str, str] = {}

    def mark(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("@"):
            key = f"__raw{len(raw)}__"
            raw[key] = value[1:]
            return key
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(body))
    for key, literal in raw.items():
        text = text.replace(f'"{key}"', literal)
    return text.encode("utf-8", "surrogatepass")


def _post(client: Any, path: str, body: Any) -> Any:
    response = client.post(path, content=_encode(body), headers={"content-type": "application/json"})
    status, text = response.status_code, response.text
    if status >= 500:
        raise RuntimeError(f"HTTP {status}: {text[:200]}")
    if status >= 400:
        try:
            error = json.loads(text)["error"]
            assert isinstance(error["message"], str) and isinstance(error["type"], str)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise AssertionError(f"HTTP {status} without an OpenAI error body: {text[:200]}") from None
        raise _HTTPRefusal(f"HTTP {status} {error.get('code') or error['type']}: {error['message'][:120]}")
    if status != 200:
        raise AssertionError(f"HTTP {status}: {text[:200]}")
    if "text/event-stream" in response.headers.get("content-type", ""):
        events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        if not events or events[-1] != "[DONE]":
            raise AssertionError(f"the stream did not end with [DONE]: {events[-2:]}")
        errors = [e for e in events[:-1] if '"error"' in e]
        if errors:  # an error after the 200 was sent: the request was accepted, then failed
            raise AssertionError(f"error inside a 200 stream: {errors[0][:200]}")
        return events
    reply = response.json()
    assert isinstance(reply["choices"], list) and reply["choices"], reply
    return reply


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` on a real loopback socket (uvicorn in a thread), stopped after."""
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, name="focus-adversarial-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def run_server(decoder: Any, tmp: Path, tally: Tally) -> None:
    """Every case of ``server_cases`` against the OpenAI server on the batched engine (limits made small:
    a 2 MiB body, 4 images a request, so the oversized cases are cheap)."""
    import httpx

    from focus_integrations.server import ImageAccess, Limits, ServerConfig, create_app
    from focus_integrations.server.engines import make_engine

    media = tmp / "server-media" / "media"
    media.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(
        model_id="focus-tiny",
        limits=Limits(max_request_bytes=2 << 20, max_images_per_request=4),
        images=ImageAccess(local_media_dir=media),
    )
    app = create_app(make_engine(decoder, "batched"), config)
    with serving(app) as url, httpx.Client(base_url=url, timeout=SERVER_DEADLINE_S + 5) as client:
        for name, path, body, label in server_cases(media):
            entry = "OpenAI server" + (" (/v1/completions)" if path.endswith("/completions") and
                                       "chat" not in path else "")  # fmt: skip
            tally.add(
                judge(entry, name, label, lambda p=path, b=body: _post(client, p, b), SERVER_DEADLINE_S)
            )
