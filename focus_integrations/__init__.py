"""FOCUS multi-image decoding for Hugging Face vision-language models.

The core (this package's top level) imports only torch, transformers, pillow and numpy. The LangChain,
LlamaIndex and Chroma adapters live in sub-packages and are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from focus_integrations.errors import (
    CheckpointError,
    ConstraintError,
    ContextLengthError,
    DecoderBusyError,
    EngineClosedError,
    FocusError,
    ImageLoadError,
    IncompleteOutputError,
    InvalidOptionError,
    ModelNotFoundError,
    NoImageError,
    PromptError,
    RemoteImageError,
    UnsupportedModelError,
    UnsupportedSchemaError,
    UnsupportedTokenizerError,
    VideoLoadError,
)

__version__ = "0.1.0"

_LAZY = {
    "FocusDecoder": "focus_integrations.decoder",
    "TextStream": "focus_integrations.decoder",
    "GenerationOutput": "focus_integrations.outputs",
    "Usage": "focus_integrations.outputs",
    "DecodingOptions": "focus_integrations.options",
    "LoadingOptions": "focus_integrations.loading",
    "default_model_path": "focus_integrations.default_model",
    "sample_frames": "focus_integrations.video",
    "ResponseFormat": "focus_integrations.constraints",
}

if TYPE_CHECKING:
    from focus_integrations.constraints import ResponseFormat
    from focus_integrations.decoder import FocusDecoder, TextStream
    from focus_integrations.default_model import default_model_path
    from focus_integrations.loading import LoadingOptions
    from focus_integrations.options import DecodingOptions
    from focus_integrations.outputs import GenerationOutput, Usage
    from focus_integrations.video import sample_frames


def __getattr__(name: str) -> Any:
    # torch/transformers load only when the engine is first touched: `import focus_integrations` stays cheap.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'focus_integrations' has no attribute {name!r}")


__all__ = [
    "FocusDecoder",
    "TextStream",
    "GenerationOutput",
    "Usage",
    "DecodingOptions",
    "LoadingOptions",
    "default_model_path",
    "sample_frames",
    "FocusError",
    "InvalidOptionError",
    "NoImageError",
    "ImageLoadError",
    "RemoteImageError",
    "DecoderBusyError",
    "PromptError",
    "ContextLengthError",
    "EngineClosedError",
    "ModelNotFoundError",
    "CheckpointError",
    "UnsupportedModelError",
    "VideoLoadError",
    "ResponseFormat",
    "ConstraintError",
    "UnsupportedTokenizerError",
    "UnsupportedSchemaError",
    "IncompleteOutputError",
]
