"""Image URLs of OpenAI requests -> decoded images, under the server's :class:`ImageAccess` policy.

``data:`` URIs are always accepted; ``file://`` URLs only inside the configured media folder (after
resolving links, so ``..`` and symlinks cannot leave it); ``http(s)`` only when remote images are allowed,
then fetched by the core loader with its byte, time and redirect limits. The size of an inline or local
image is read from its header and checked against ``max_image_pixels`` before it is decoded.
"""

from __future__ import annotations

import inspect
import io
import os
import urllib.parse
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from focus_integrations.errors import ImageLoadError, RemoteImageError
from focus_integrations.images import _decode_data_uri, load_image
from focus_integrations.server.config import ImageAccess

__all__ = ["load_request_image", "ImageLimitError"]


class ImageLimitError(ImageLoadError):
    """An image is larger than the server allows (``max_image_pixels``)."""


def load_request_image(url: str, access: ImageAccess, max_pixels: int) -> Image.Image:
    """The image an ``image_url`` points to, as RGB, or an ``ImageLoadError`` saying why not."""
    if not isinstance(url, str) or not url:
        raise ImageLoadError("image_url.url must be a non-empty string")
    scheme = url[:16].lower()
    if scheme.startswith("data:"):
        data = _decode_data_uri(url)
    elif scheme.startswith("file://"):
        data = _read_local(url, access)
    elif scheme.startswith(("http://", "https://")):
        if not access.allow_remote:
            raise RemoteImageError(
                f"remote image URLs are disabled on this server: {url[:80]} (send the image as a data: URI; "
                "the operator can enable them with --allow-remote-images)"
            )
        return _fetch_remote(url, access, max_pixels)
    else:
        raise ImageLoadError(
            f"unsupported image URL {url[:80]!r}: use a data: URI"
            + (", a file:// URL under the server's media folder" if access.local_media_dir else "")
            + (" or an http(s) URL" if access.allow_remote else "")
        )
    _check_pixels(data, max_pixels, url)
    return load_image(data)


def _read_local(url: str, access: ImageAccess) -> bytes:
    if access.local_media_dir is None:
        raise ImageLoadError(
            "file:// image URLs are disabled on this server (the operator can allow a folder with "
            "--allowed-local-media-path)"
        )
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ImageLoadError(f"file:// URL with a remote host is not supported: {url[:80]}")
    root = Path(os.path.realpath(access.local_media_dir))
    path = Path(os.path.realpath(urllib.parse.unquote(parsed.path)))
    if root != path and root not in path.parents:
        raise ImageLoadError(f"{url[:80]} is outside the server's media folder")
    if not path.is_file():
        raise ImageLoadError(f"image file not found: {url[:80]}")
    try:
        return path.read_bytes()
    except OSError as err:
        raise ImageLoadError(f"cannot read {url[:80]}: {err}") from None


def _fetch_remote(url: str, access: ImageAccess, max_pixels: int) -> Image.Image:
    """The core loader fetches (byte and time limits, redirects bounded where it supports it) and decodes."""
    kwargs: dict[str, object] = {"max_bytes": access.remote_max_bytes, "timeout": access.remote_timeout_s}
    if "max_redirects" in inspect.signature(load_image).parameters:
        kwargs["max_redirects"] = access.remote_max_redirects
    image = load_image(url, allow_remote=True, **kwargs)
    if image.width * image.height > max_pixels:
        raise ImageLimitError(
            f"image is {image.width}x{image.height} pixels; this server accepts at most {max_pixels} per image"
        )
    return image


def _check_pixels(data: bytes, max_pixels: int, url: str) -> None:
    """Read the size from the header only: an oversized image is refused before it is decoded."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageLoadError(f"cannot decode image ({url[:40]}...): {err}") from None
    if width * height > max_pixels:
        raise ImageLimitError(
            f"image is {width}x{height} = {width * height} pixels; this server accepts at most {max_pixels} "
            "per image (resize it first)"
        )
