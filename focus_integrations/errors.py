"""Exceptions raised by focus-integrations.

Every error a caller can provoke with bad input derives from :class:`FocusError`, and also from the
built-in type it refines (``ValueError``, ``OSError``, ``TypeError``), so existing ``except ValueError``
code keeps working.
"""

from __future__ import annotations


class FocusError(Exception):
    """Base class of every error raised on purpose by this library."""


class InvalidOptionError(FocusError, ValueError):
    """An option has a wrong value (unknown mode or noise, negative alpha, top_p outside (0, 1], ...)."""


class NoImageError(FocusError, ValueError):
    """A request that needs images holds none."""


class ImageLoadError(FocusError, ValueError):
    """An image could not be read: missing file, not an image, truncated, zero size, unsupported type."""


class RemoteImageError(ImageLoadError):
    """A remote (http/https) image was refused, too large, or could not be fetched in time."""


class VideoLoadError(ImageLoadError):
    """A video could not be read: missing file, not a video, no video stream, no decodable frame, PyAV missing."""


class ContextLengthError(FocusError, ValueError):
    """The prompt (text plus image tokens) does not fit in the model's context window."""


class ModelNotFoundError(FocusError, OSError):
    """A checkpoint could not be found locally and could not be downloaded (offline or no such repo)."""


class UnsupportedModelError(FocusError, TypeError):
    """The checkpoint is not an image-text-to-text model, or its family is not supported."""


__all__ = [
    "FocusError",
    "InvalidOptionError",
    "NoImageError",
    "ImageLoadError",
    "RemoteImageError",
    "VideoLoadError",
    "ContextLengthError",
    "ModelNotFoundError",
    "UnsupportedModelError",
]


class PromptError(FocusError, ValueError):
    """The messages and images could not be turned into model inputs (chat template or processor refused)."""


__all__ += ["PromptError"]


class DatasetLayoutError(FocusError, ValueError):
    """A local benchmark copy is missing, or its folder is not in the layout the hub publishes (the message
    names the expected one). The evaluation harness never downloads data."""


__all__ += ["DatasetLayoutError"]


class EngineClosedError(FocusError, RuntimeError):
    """A batch engine was closed: it takes no new request, and the requests it still held were cancelled."""


__all__ += ["EngineClosedError"]


class ConstraintError(FocusError, ValueError):
    """Constrained decoding (``response_format``, forced tool calls) could not be applied as asked."""


class UnsupportedTokenizerError(ConstraintError):
    """The model's tokenizer cannot spell constrained output (e.g. a word-level vocabulary without ``{``)."""


class UnsupportedSchemaError(ConstraintError):
    """The JSON schema, regex or choice list cannot be compiled into a grammar (unsupported keyword, bad regex)."""


class IncompleteOutputError(FocusError, ValueError):
    """A structured answer was cut off (``max_new_tokens`` ran out) before its grammar was complete."""


__all__ += ["ConstraintError", "UnsupportedTokenizerError", "UnsupportedSchemaError", "IncompleteOutputError"]


class DecoderBusyError(FocusError, RuntimeError):
    """The decoder cannot take this call now: the calling thread's own stream still holds it (waiting would
    deadlock), or another request held it longer than ``busy_timeout``.

    Finish (iterate to the end) or ``close()`` the open stream, use another thread, or a batching engine.
    """


__all__ += ["DecoderBusyError"]


class CheckpointError(FocusError, OSError):
    """A checkpoint was found but its files cannot be read: truncated or corrupt weights, invalid JSON."""


__all__ += ["CheckpointError"]


class RequestTimeoutError(FocusError, TimeoutError):
    """A call took longer than its ``timeout`` (ChatFocus's per-call deadline, checked between tokens)."""


__all__ += ["RequestTimeoutError"]
