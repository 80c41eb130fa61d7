"""LlamaIndex's own ``ImageDocument(image_url=...)`` constructor fetches the URL (a third-party behaviour
the adapter cannot prevent; docs/llama_index.md says so), while the safe forms open no connection at all.

A loopback HTTP server counts the requests it gets. If a LlamaIndex release stops fetching, the first test
fails and the docs must be updated.
"""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator

import pytest
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.schema import ImageDocument, ImageNode, MediaResource
from PIL import Image

from focus_integrations import RemoteImageError
from focus_integrations.llama_index.conversion import chat_messages_to_engine, prompt_to_engine


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[str]]]:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    body, requests = buffer.getvalue(), []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/photo.png", requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_image_document_with_image_url_fetches_it_in_its_constructor(server) -> None:
    url, requests = server
    before = len(requests)
    ImageDocument(image_url=url)  # LlamaIndex checks the URL with requests.get(url, timeout=(60, 60))
    assert len(requests) == before + 1


def test_the_safe_forms_open_no_connection_and_the_adapter_refuses_them(server) -> None:
    url, requests = server
    before = len(requests)
    documents = [
        ImageNode(image_url=url),
        ImageDocument(image_resource=MediaResource(url=url)),
    ]
    block = ImageBlock(url=url)
    for document in documents:
        with pytest.raises(RemoteImageError):
            prompt_to_engine("q", [document])
    with pytest.raises(RemoteImageError):
        chat_messages_to_engine([ChatMessage(role=MessageRole.USER, blocks=[block, TextBlock(text="q")])])
    assert len(requests) == before  # built and refused without a single request
