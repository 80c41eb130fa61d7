"""A loopback HTTP server that misbehaves on purpose, for the remote-image deadline tests and the reliability report.

Paths (``GET``):

``/image.png``        a valid PNG, at once
``/drip``             the PNG's headers at once, then its body one byte every ``drip_interval`` seconds
``/slow-headers``     the status line, then the header bytes one every ``drip_interval`` seconds
``/silent``           reads the request and never answers
``/loop``             302 to itself
``/chain/K``          302 to ``/chain/K-1``; ``/chain/0`` redirects to ``/image.png``
``/to-file``          302 to ``file:///etc/passwd``
``/huge-length``      announces ``Content-Length: 10**12``, then sends the PNG
``/endless``          no Content-Length, bytes until the client hangs up
``/not-found``        404
``/not-an-image``     200 with HTML

Loopback only, threads are daemons, every handler stops when the client goes away or the server stops.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def png_bytes(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    server: _HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path, server = self.path, self.server
        body = server.png
        try:
            if path == "/image.png":
                self._send(200, body, "image/png")
            elif path == "/drip":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.flush()
                for byte in body:
                    if server.stopping.wait(server.drip_interval):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            elif path == "/slow-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for byte in b"X-Padding: " + b"a" * 10_000:
                    if server.stopping.wait(server.drip_interval):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            elif path == "/silent":
                server.stopping.wait(600)
            elif path == "/loop":
                self._redirect("/loop")
            elif path.startswith("/chain/"):
                hops = int(path.rsplit("/", 1)[1])
                self._redirect(f"/chain/{hops - 1}" if hops > 0 else "/image.png")
            elif path == "/to-file":
                self._redirect("file:///etc/passwd")
            elif path == "/huge-length":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(10**12))
                self.end_headers()
                self.wfile.write(body)
            elif path == "/endless":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Connection", "close")
                self.end_headers()
                chunk = b"\0" * 65536
                while not server.stopping.is_set():
                    self.wfile.write(chunk)
            elif path == "/not-an-image":
                self._send(200, b"<html><body>hello</body></html>", "text/html")
            else:
                self._send(404, b"not found", "text/plain")
        except OSError:
            pass  # the client hung up (as the deadline tests make it do)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, drip_interval: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.drip_interval = drip_interval
        self.png = png_bytes()
        self.stopping = threading.Event()


@contextmanager
def hostile_http_server(*, drip_interval: float = 0.2) -> Iterator[str]:
    """Serve the paths above on a free loopback port; yield ``http://127.0.0.1:PORT``."""
    server = _HostileServer(drip_interval)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
        time.sleep(0)  # let handler threads see the stop event
