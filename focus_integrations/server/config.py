"""What a server is allowed to do: its limits (with their defaults), image access, auth, engine choice."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from focus_integrations.images import REMOTE_MAX_BYTES, REMOTE_TIMEOUT_S

API_KEY_ENV = "FOCUS_API_KEY"
ENGINES = ("batched", "serial")
JOIN_MODES = ("step", "batch")  # the batched engine's joining policies (scheduler.JOIN_MODES, without torch)


@dataclass(frozen=True)
class Limits:
    """Per-request and server-wide bounds; every one is checked before any model work.

    A request over a per-request limit gets a 400 (413 for the body size); a full queue gets a 429 with
    ``Retry-After``. Together they bound what one request, and the queue, can hold in memory.
    """

    max_images_per_request: int = 8
    max_image_pixels: int = 4096 * 4096  # width * height of one decoded image
    max_output_tokens: int = 2048  # cap on max_tokens / max_completion_tokens
    default_max_tokens: int = 256  # when a request sets neither
    max_total_tokens: int | None = None  # prompt + max output tokens; None: the model's context window
    max_queued_requests: int = 64  # accepted, not yet decoding; one more gets a 429
    max_request_bytes: int = 64 * 1024 * 1024  # request body (base64 images included)

    def __post_init__(self) -> None:
        for name in (
            "max_images_per_request",
            "max_image_pixels",
            "max_output_tokens",
            "default_max_tokens",
            "max_queued_requests",
            "max_request_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.max_total_tokens is not None and self.max_total_tokens < 2:
            raise ValueError("max_total_tokens must be >= 2 or None")


@dataclass(frozen=True)
class ImageAccess:
    """Where image URLs may point. ``data:`` URIs are always accepted.

    ``local_media_dir``: ``file://`` URLs are served only from inside this folder (None: refused).
    ``allow_remote``: fetch ``http(s)`` URLs, with the byte, time and redirect limits below (off by default:
    a URL in a prompt must not make the server fetch it).
    """

    local_media_dir: Path | None = None
    allow_remote: bool = False
    remote_max_bytes: int = REMOTE_MAX_BYTES
    remote_timeout_s: float = REMOTE_TIMEOUT_S
    remote_max_redirects: int = 3

    def __post_init__(self) -> None:
        def whole(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not whole(self.remote_max_bytes) or self.remote_max_bytes < 1:
            raise ValueError(f"remote_max_bytes must be an integer >= 1, got {self.remote_max_bytes!r}")
        timeout = self.remote_timeout_s
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout < float("inf")
        ):
            raise ValueError(f"remote_timeout_s must be a finite number of seconds > 0, got {timeout!r}")
        if not whole(self.remote_max_redirects) or self.remote_max_redirects < 0:
            raise ValueError(
                f"remote_max_redirects must be an integer >= 0, got {self.remote_max_redirects!r}"
            )


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``create_app`` needs besides the engine."""

    model_id: str
    limits: Limits = field(default_factory=Limits)
    images: ImageAccess = field(default_factory=ImageAccess)
    api_key: str | None = None  # None: no auth; the CLI also reads $FOCUS_API_KEY

    @staticmethod
    def api_key_from_env() -> str | None:
        return os.environ.get(API_KEY_ENV) or None
