"""Turn every image form users hand us into an RGB ``PIL.Image``, or fail with :class:`ImageLoadError`.

Accepted: ``PIL.Image.Image``, a filesystem path (``str`` or ``os.PathLike``), ``file://`` URLs, ``data:`` URIs,
raw ``bytes``, base64 text (what transformers' ``load_image`` accepts), numpy arrays and torch tensors (HxW,
HxWx1/3/4 or CxHxW; uint8, or float in [0, 1]). The EXIF orientation tag is applied, as transformers'
``load_image`` does (``ImageOps.exif_transpose``): a phone photo tagged "rotate 90" comes out upright. Remote ``http(s)://`` URLs are
refused unless the caller passes ``allow_remote=True``, and then fetched with a size cap and a deadline.

The deadline (``timeout``) bounds the WHOLE fetch (name resolution, connect, every redirect hop, headers,
body), not each socket read: a server that drips one byte at a time cannot hold a call past it. Redirects are
followed up to ``REMOTE_MAX_REDIRECTS`` hops, to http(s) URLs only; an announced ``Content-Length`` above
``max_bytes`` is refused before the body is read.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import math
import os
import re
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from focus_integrations.errors import ImageLoadError, InvalidOptionError, RemoteImageError

ImageInput = Union[Image.Image, str, "os.PathLike[str]", bytes, bytearray, np.ndarray]

MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs long before they exhaust memory
REMOTE_MAX_BYTES = 20 * 1024 * 1024
REMOTE_TIMEOUT_S = 10.0  # deadline of one whole remote fetch, redirects included
REMOTE_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RemoteImages:
    """Permission to fetch remote images, with its limits: pass it wherever ``allow_remote`` /
    ``allow_remote_images`` is accepted (``FocusDecoder(model, processor, allow_remote_images=RemoteImages(
    timeout=2.0))``). ``True`` there means ``RemoteImages()``: the default limits."""

    timeout: float = REMOTE_TIMEOUT_S  # seconds for the whole fetch, redirects included
    max_bytes: int = REMOTE_MAX_BYTES

    def __post_init__(self) -> None:
        _check_limits(self.max_bytes, self.timeout)


def check_remote_permission(value: Any, name: str = "allow_remote_images") -> bool | RemoteImages:
    """``value`` if it is a valid remote-image permission (``True``, ``False`` or a :class:`RemoteImages`)."""
    if isinstance(value, (bool, RemoteImages)):
        return value
    raise InvalidOptionError(f"{name} must be True, False or a RemoteImages(...), got {value!r}")


def load_image(
    source: Any,
    *,
    allow_remote: bool | RemoteImages = False,
    max_bytes: int = REMOTE_MAX_BYTES,
    timeout: float = REMOTE_TIMEOUT_S,
) -> Image.Image:
    """Return ``source`` as a fully decoded RGB image (a new object; the input is never modified).

    ``allow_remote`` may be a :class:`RemoteImages`, whose limits then replace ``max_bytes`` and ``timeout``.
    """
    if isinstance(allow_remote, RemoteImages):
        max_bytes, timeout = allow_remote.max_bytes, allow_remote.timeout
    if isinstance(source, Image.Image):
        return _validated(source, "PIL image")
    if isinstance(source, np.ndarray):
        return _validated(_from_array(source), "numpy array")
    if _is_torch_tensor(source):
        return _validated(_from_array(_tensor_to_array(source)), "torch tensor")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(bytes(source), "bytes")
    if isinstance(source, os.PathLike):
        return _read_path(os.fspath(source))
    if isinstance(source, str):
        return _from_string(source, allow_remote=allow_remote, max_bytes=max_bytes, timeout=timeout)
    raise ImageLoadError(
        f"unsupported image type {type(source).__name__}: pass a PIL image, a path, a file:// or data: URI, "
        "bytes or a numpy array"
    )


def _from_string(text: str, *, allow_remote: Any, max_bytes: int, timeout: float) -> Image.Image:
    lowered = text[:16].lower()
    if lowered.startswith("data:"):
        return _decode(_decode_data_uri(text), "data URI")
    if lowered.startswith("file://"):
        parsed = urllib.parse.urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise ImageLoadError(f"file:// URL with a remote host is not supported: {text[:80]}")
        return _read_path(urllib.parse.unquote(parsed.path))
    if lowered.startswith(("http://", "https://")):
        _check_limits(max_bytes, timeout)
        if not allow_remote:
            raise RemoteImageError(
                f"remote image URL refused: {text[:80]} (pass allow_remote=True / allow_remote_images=True "
                "to fetch remote images)"
            )
        return _decode(_fetch(text, max_bytes=max_bytes, timeout=timeout), text[:80])
    if not os.path.exists(text) and _looks_like_base64(text):
        return _decode(decode_base64_image(text), "base64 text")
    return _read_path(text)


def _decode_data_uri(uri: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ImageLoadError("malformed data URI: no ',' separating header and payload")
    if ";base64" not in header.lower():
        return urllib.parse.unquote_to_bytes(payload)
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as err:
        raise ImageLoadError(f"data URI payload is not valid base64: {err}") from None


def _check_limits(max_bytes: Any, timeout: Any) -> None:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise InvalidOptionError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < math.inf):
        raise InvalidOptionError(f"timeout must be a positive finite number of seconds, got {timeout!r}")


def _fetch(url: str, *, max_bytes: int, timeout: float) -> bytes:
    """The body at ``url``, or RemoteImageError; returns or raises within ``timeout`` seconds, whatever the server.

    The transfer runs in a helper thread that the caller waits for until the deadline; at the deadline every
    socket it opened is shut down, so the helper ends promptly instead of lingering on a stalled server.
    """
    transfer = _Transfer(url, max_bytes, timeout)
    worker = threading.Thread(target=transfer.run, name="focus-image-fetch", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        transfer.abort()
        raise RemoteImageError(
            f"could not fetch {url[:80]}: no complete answer within the {timeout} s deadline"
        )
    if transfer.error is not None:
        raise transfer.error
    assert transfer.data is not None
    return transfer.data


class _Transfer:
    """One remote fetch: urllib (proxies from the environment, redirects) with every connection recorded."""

    def __init__(self, url: str, max_bytes: int, timeout: float) -> None:
        self.url, self.max_bytes, self.timeout = url, max_bytes, timeout
        self.data: bytes | None = None
        self.error: RemoteImageError | None = None
        self._connections: list[http.client.HTTPConnection] = []
        self._aborted = threading.Event()

    def run(self) -> None:
        try:
            self.data = self._get()
        except RemoteImageError as err:
            self.error = err
        except Exception as err:  # noqa: BLE001 - URLError, HTTPError, socket errors, bad status lines: one type
            reason = "aborted at the deadline" if self._aborted.is_set() else _fetch_reason(err)
            self.error = RemoteImageError(f"could not fetch {self.url[:80]}: {reason}")

    def abort(self) -> None:
        self._aborted.set()
        for connection in list(self._connections):
            sock = connection.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv(); close() alone may not
                except OSError:
                    pass

    def _get(self) -> bytes:
        opener = urllib.request.build_opener(
            _RecordingHTTPHandler(self._connections),
            _RecordingHTTPSHandler(self._connections),
            _LimitedRedirects(),
        )
        # The socket timeout bounds single operations; the caller's join() is the deadline.
        with opener.open(self.url, timeout=self.timeout) as response:
            announced = response.headers.get("Content-Length")
            if announced is not None and announced.strip().isdigit() and int(announced) > self.max_bytes:
                raise RemoteImageError(
                    f"remote image {self.url[:80]} announces {int(announced)} bytes, more than "
                    f"max_bytes={self.max_bytes}"
                )
            chunks: list[bytes] = []
            size = 0
            while size <= self.max_bytes and not self._aborted.is_set():
                chunk = response.read(min(_CHUNK, self.max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        if size > self.max_bytes:
            raise RemoteImageError(f"remote image {self.url[:80]} is larger than max_bytes={self.max_bytes}")
        return b"".join(chunks)


def _recording(connection_class: type, connections: list) -> Any:
    def make(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        connection = connection_class(host, **kwargs)
        connections.append(connection)
        return connection

    return make


class _RecordingHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, connections: list) -> None:
        super().__init__()
        self._connections = connections

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_recording(http.client.HTTPConnection, self._connections), req)


class _RecordingHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, connections: list) -> None:
        super().__init__()
        self._connections = connections

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(
            _recording(http.client.HTTPSConnection, self._connections), req, context=self._context
        )


class _LimitedRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = REMOTE_MAX_REDIRECTS
    max_repeats = 1  # the same URL twice is a loop

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        target = urllib.parse.urljoin(req.full_url, newurl)
        if urllib.parse.urlparse(target).scheme.lower() not in ("http", "https"):
            raise RemoteImageError(f"refused a redirect from {req.full_url[:80]} to {target[:80]}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        if err.code in (301, 302, 303, 307, 308):
            if "not allowed" in str(err.reason):  # urllib's own refusal of a non-http(s) target
                return f"refused a redirect ({str(err.reason)[:120]})"
            return f"too many redirects (more than {REMOTE_MAX_REDIRECTS}, or a loop)"
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        err = err.reason if isinstance(err.reason, BaseException) else err
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:200]


def _read_path(path: str) -> Image.Image:
    if not os.path.isfile(path):
        raise ImageLoadError(f"image file not found: {path}")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise ImageLoadError(f"cannot read image file {path}: {err}") from None
    return _decode(data, path)


def _decode(data: bytes, origin: str) -> Image.Image:
    if not data:
        raise ImageLoadError(f"empty image data ({origin})")
    try:
        with Image.open(io.BytesIO(data)) as img:
            _check_size(img.size, origin)
            img.load()  # force the full decode: truncated files fail here, not later inside a processor
            return _validated(img, origin)
    except ImageLoadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageLoadError(f"cannot decode image ({origin}): {err}") from None


def _from_array(array: np.ndarray) -> Image.Image:
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageLoadError(f"numpy image must be HxW or HxWx{{1,3,4}}, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise ImageLoadError("numpy image must hold finite numbers")
        if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.max() <= 1.0 and arr.min() >= 0.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def _check_size(size: tuple[int, int], origin: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"image has zero size {width}x{height} ({origin})")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageLoadError(
            f"image is too large: {width}x{height} pixels > {MAX_IMAGE_PIXELS} ({origin}); resize it first"
        )


def _validated(img: Image.Image, origin: str) -> Image.Image:
    _check_size(img.size, origin)
    img = upright(img)
    try:
        return img.convert("RGB")
    except (OSError, ValueError) as err:
        raise ImageLoadError(f"cannot convert image to RGB ({origin}): {err}") from None


def upright(img: Image.Image) -> Image.Image:
    """``img`` as it is meant to be seen: its EXIF orientation applied (``ImageOps.exif_transpose``).

    Images without an orientation tag (or tagged 1, "as stored") are returned as they are, without a copy. A
    damaged EXIF block leaves the pixels as stored: it must not make a readable picture unreadable.
    """
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - PIL raises many types for malformed EXIF
        return img
    if orientation in (None, 1):
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001
        return img


def decode_base64_image(data: str | bytes) -> bytes:
    """The bytes of base64 image data, with or without a ``data:image/...;base64,`` prefix (line breaks allowed)."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("ascii")
        except UnicodeDecodeError:
            raise ImageLoadError("base64 image data holds non-ASCII bytes") from None
    if not isinstance(data, str):
        raise ImageLoadError(f"base64 image data must be a string, got {type(data).__name__}")
    if data[:5].lower() == "data:":
        return _decode_data_uri(data)
    payload = "".join(data.split())
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ImageLoadError(f"image data is not valid base64: {err}") from None


_EXIF_ORIENTATION = 0x0112
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]+")


def _looks_like_base64(text: str) -> bool:
    # Long text of the base64 alphabet only that names no file: transformers' load_image decodes it as base64.
    return len(text) >= 64 and _BASE64_TEXT.fullmatch(text) is not None


def _is_torch_tensor(source: Any) -> bool:
    return type(source).__module__.startswith("torch") and hasattr(source, "detach")


def _tensor_to_array(tensor: Any) -> np.ndarray:
    """A torch image tensor as an HxW(xC) array; channel-first (CxHxW, as torchvision makes them) is moved last."""
    tensor = tensor.detach().to("cpu")
    array = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    return array


def image_to_data_uri(img: Image.Image, fmt: str = "PNG") -> str:
    """Encode an image as a ``data:`` URI (used by adapters that must hand images to frameworks as text)."""
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
