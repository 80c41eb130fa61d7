"""Every image form LangChain users send, through ChatFocus into the engine; remote URLs refused by default."""

from __future__ import annotations

import base64
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from focus_lc_helpers import png_b64, png_bytes
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from PIL import Image

from focus_integrations.errors import FocusError, ImageLoadError, InvalidOptionError, RemoteImageError
from focus_integrations.langchain import ChatFocus
from focus_integrations.langchain._messages import ImagePolicy, to_engine_messages


def _forms(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """One block per supported form, each carrying the red image (v1, OpenAI, v0, Anthropic, paths...)."""
    red_b64 = base64.b64encode(files["red"].read_bytes()).decode()
    data_uri = f"data:image/png;base64,{red_b64}"
    return {
        "v1 base64": {"type": "image", "base64": red_b64, "mime_type": "image/png"},
        "v1 data-uri url": {"type": "image", "url": data_uri},
        "v1 file:// url": {"type": "image", "url": files["red"].as_uri()},
        "v1 local path as url": {"type": "image", "url": str(files["red"])},
        "v1 file_id": {"type": "image", "file_id": "red-file"},
        "v1 file block with image mime": {"type": "file", "base64": red_b64, "mime_type": "image/png"},
        "openai image_url dict": {"type": "image_url", "image_url": {"url": data_uri}},
        "openai image_url string": {"type": "image_url", "image_url": data_uri},
        "openai responses input_image": {"type": "input_image", "image_url": data_uri},
        "v0 source_type base64": {
            "type": "image",
            "source_type": "base64",
            "data": red_b64,
            "mime_type": "image/png",
        },
        "v0 source_type url (file://)": {"type": "image", "source_type": "url", "url": files["red"].as_uri()},
        "v0 source_type id": {"type": "image", "source_type": "id", "id": "red-file"},
        "transformers-style PIL image": {"type": "image", "image": Image.open(files["red"])},
        "anthropic source base64": {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": red_b64},
        },
    }


@pytest.fixture
def policy(image_files: dict[str, Path]) -> ImagePolicy:
    return ImagePolicy(file_resolver={"red-file": image_files["red"]}.get)


def test_every_form_yields_the_same_pixels(image_files: dict[str, Path], policy: ImagePolicy) -> None:
    expected = np.asarray(Image.open(image_files["red"]).convert("RGB"))
    for name, block in _forms(image_files).items():
        [message] = to_engine_messages([HumanMessage(content=[block, {"type": "text", "text": "?"}])], policy)
        image_item, text_item = message["content"]
        assert isinstance(image_item["image"], Image.Image), name
        assert np.array_equal(np.asarray(image_item["image"]), expected), name
        assert text_item == {"type": "text", "text": "?"}, name


def test_images_keep_prompt_order_across_turns(image_files: dict[str, Path], policy: ImagePolicy) -> None:
    history = [
        SystemMessage("You compare products."),
        HumanMessage(content=[{"type": "image", "url": str(image_files["red"])}, "first"]),
        AIMessage("noted"),
        HumanMessage(content=["then", {"type": "image", "url": image_files["green"].as_uri()}]),
        ToolMessage(content=[{"type": "image", "base64": png_b64("blue", (24, 32))}], tool_call_id="c1"),
    ]
    messages = to_engine_messages(history, policy)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "tool"]
    images = [
        item["image"]
        for m in messages
        if isinstance(m["content"], list)
        for item in m["content"]
        if item["type"] == "image"
    ]
    assert [img.getpixel((0, 0)) for img in images] == [(255, 0, 0), (0, 128, 0), (0, 0, 255)]
    assert [img.size for img in images] == [(32, 24), (28, 28), (24, 32)]
    assert messages[4]["tool_call_id"] == "c1"


def test_consecutive_same_role_turns_merge(policy: ImagePolicy) -> None:
    messages = to_engine_messages(
        [SystemMessage("a"), SystemMessage("b"), HumanMessage("x"), HumanMessage("y"), AIMessage("z")], policy
    )
    assert messages[0] == {"role": "system", "content": "a\n\nb"}
    assert messages[1] == {"role": "user", "content": [{"type": "text", "text": "x\n\ny"}]}


def test_invoke_with_mixed_forms_runs_focus_over_all_images(
    llm: ChatFocus, image_files: dict[str, Path]
) -> None:
    message = llm.invoke(
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "Which is cheaper?"},
                    {"type": "image", "base64": png_b64("red"), "mime_type": "image/png"},
                    {"type": "image", "url": image_files["green"].as_uri()},
                    {"type": "image_url", "image_url": {"url": str(image_files["blue"])}},
                ]
            )
        ]
    )
    focus = message.response_metadata["focus"]
    assert (focus["rule"], focus["n_images"], focus["n_rows"]) == ("focus", 3, 4)
    assert (
        message.usage_metadata["output_tokens"] == 8
        and message.response_metadata["finish_reason"] == "length"
    )


def test_images_change_the_prompt_length(llm: ChatFocus) -> None:
    text_only = llm.invoke("Which is cheaper?").usage_metadata["input_tokens"]
    block = {"type": "image", "base64": png_b64("red"), "mime_type": "image/png"}
    with_image = llm.invoke([HumanMessage(content=[block, "Which is cheaper?"])]).usage_metadata[
        "input_tokens"
    ]
    assert with_image > text_only  # the image's tokens reached the model


def test_remote_url_refused_by_default(llm: ChatFocus) -> None:
    for block in (
        {"type": "image", "url": "https://example.com/a.png"},
        {"type": "image_url", "image_url": {"url": "http://example.com/a.png"}},
        {"type": "image", "source_type": "url", "url": "https://example.com/a.png"},
    ):
        with pytest.raises(RemoteImageError, match="remote image URL refused"):
            llm.invoke([HumanMessage(content=[block, "?"])])


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    body = png_bytes("red")

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/slow.png":
            time.sleep(2.0)
        payload = self.body if self.path == "/small.png" else self.body + b"\0" * 4096
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[str]:
    """A local HTTP server (loopback only) standing in for a remote image host."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_remote_url_allowed_with_size_limit(qwen_path: str, loopback_server: str) -> None:
    limit = len(png_bytes("red")) + 100
    llm = ChatFocus(model=qwen_path, max_tokens=2, allow_remote_images=True, remote_image_max_bytes=limit)
    ok = llm.invoke([HumanMessage(content=[{"type": "image", "url": f"{loopback_server}/small.png"}, "?"])])
    assert ok.response_metadata["focus"]["n_images"] == 1
    with pytest.raises(RemoteImageError):
        llm.invoke([HumanMessage(content=[{"type": "image", "url": f"{loopback_server}/big.png"}, "?"])])


def test_file_id_without_resolver_is_a_clear_error(llm: ChatFocus) -> None:
    with pytest.raises(ImageLoadError, match="file_resolver"):
        llm.invoke([HumanMessage(content=[{"type": "image", "file_id": "file-123"}, "?"])])


def test_file_resolver_is_used(qwen_path: str, image_files: dict[str, Path]) -> None:
    asked: list[str] = []

    def resolve(file_id: str) -> Path:
        asked.append(file_id)
        return image_files["green"]

    llm = ChatFocus(model=qwen_path, max_tokens=2, file_resolver=resolve)
    message = llm.invoke([HumanMessage(content=[{"type": "image", "file_id": "file-9"}, "?"])])
    assert asked == ["file-9"] and message.response_metadata["focus"]["n_images"] == 1


@pytest.mark.parametrize(
    "block, error",
    [
        (
            {"type": "image", "base64": "bm90IGFuIGltYWdl", "mime_type": "image/png"},
            ImageLoadError,
        ),  # "not an image"
        ({"type": "image", "url": "/nonexistent/catalog/a.png"}, ImageLoadError),
        ({"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}, InvalidOptionError),
        ({"type": "file", "base64": "AAAA", "mime_type": "application/pdf"}, InvalidOptionError),
        ({"type": "mystery", "x": 1}, InvalidOptionError),
    ],
)
def test_bad_content_raises_documented_errors(llm: ChatFocus, block: dict[str, Any], error: type) -> None:
    with pytest.raises(error) as info:
        llm.invoke([HumanMessage(content=[block, "?"])])
    assert isinstance(info.value, FocusError)
    assert "message 0 (human), block 0" in str(info.value)


def test_images_in_assistant_turns_are_refused(llm: ChatFocus) -> None:
    with pytest.raises(InvalidOptionError, match="only supported in human and tool messages"):
        llm.invoke(
            [AIMessage(content=[{"type": "image", "base64": png_b64("red"), "mime_type": "image/png"}])]
        )


def test_remote_url_time_limit(qwen_path: str, loopback_server: str) -> None:
    llm = ChatFocus(model=qwen_path, max_tokens=2, allow_remote_images=True, remote_image_timeout=0.3)
    start = time.monotonic()
    with pytest.raises(RemoteImageError):
        llm.invoke([HumanMessage(content=[{"type": "image", "url": f"{loopback_server}/slow.png"}, "?"])])
    assert time.monotonic() - start < 1.9  # gave up at the limit, did not wait for the slow server
