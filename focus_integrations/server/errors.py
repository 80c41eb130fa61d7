"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` with the right HTTP status.

Every :class:`FocusError` is the client's doing (bad options, images, prompt) and maps to a 4xx; only a
defect of the server itself is a 500.
"""

from __future__ import annotations

from typing import Any

from focus_integrations import errors as core_errors


class APIError(Exception):
    """An error answered to the client as-is."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


# Most specific first; anything else derived from FocusError is a 400.
_FOCUS_ERROR_STATUS: tuple[tuple[str, int, str | None], ...] = (
    ("ContextLengthError", 400, "context_length_exceeded"),
    ("ModelNotFoundError", 404, "model_not_found"),
    ("DecoderBusyError", 409, "decoder_busy"),
    ("RemoteImageError", 400, "remote_image_error"),
    ("ImageLoadError", 400, "invalid_image"),
    ("NoImageError", 400, "no_image"),
    ("InvalidOptionError", 400, "invalid_option"),
    ("UnsupportedTokenizerError", 400, "response_format_unsupported"),
    ("UnsupportedSchemaError", 400, "unsupported_schema"),
    ("ConstraintError", 400, "invalid_constraint"),
    ("PromptError", 400, "invalid_prompt"),
    ("UnsupportedModelError", 400, "unsupported_model"),
)


def from_focus_error(err: core_errors.FocusError, param: str | None = None) -> APIError:
    """The 4xx answer for an error the engine raised about this request (``param``: the field at fault)."""
    for name, status, code in _FOCUS_ERROR_STATUS:
        cls = getattr(core_errors, name, None)
        if cls is not None and isinstance(err, cls):
            return APIError(status, str(err), param=param, code=code)
    return APIError(400, str(err), param=param, code="invalid_request")
