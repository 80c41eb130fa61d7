"""Load a model and its processor from a hub id or a local folder: the transformers loading options, checked
up front, and clear errors offline, for a missing backend, a bad device or a damaged checkpoint."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from focus_integrations.errors import (
    CheckpointError,
    InvalidOptionError,
    ModelNotFoundError,
    UnsupportedModelError,
)

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: the CLI and the server's settings read LOADING_OPTIONS to build their
# parsers, and `focus --help` must not pay for importing torch.

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}

# Names of the hub / file arguments every from_pretrained call (config, model, processor) takes.
_HUB_ARGUMENTS = ("revision", "cache_dir", "token", "trust_remote_code", "local_files_only")


@dataclass(frozen=True)
class LoadingOptions:
    """How to load a checkpoint: transformers' ``from_pretrained`` arguments, validated.

    ``model_kwargs`` go to the model's ``from_pretrained`` only, ``processor_kwargs`` to the processor's (as
    ChatHuggingFace's and LlamaIndex's HuggingFaceLLM ``model_kwargs`` / ``tokenizer_kwargs``). ``device``
    moves the loaded model there (it excludes ``device_map``, which places it while loading, via accelerate).
    ``low_cpu_mem_usage`` is passed on; transformers 5 always loads with low memory and ignores it.
    """

    dtype: torch.dtype | str | None = None
    device: str | torch.device | int | None = None
    device_map: str | dict[str, Any] | None = None
    attn_implementation: str | None = None
    quantization_config: Any = None
    low_cpu_mem_usage: bool | None = None
    revision: str | None = None
    cache_dir: str | os.PathLike[str] | None = None
    token: str | bool | None = None
    trust_remote_code: bool = False
    local_files_only: bool | None = None
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    processor_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> LoadingOptions:
        """Validate loading arguments (``torch_dtype`` is an alias of ``dtype``); ``None`` = not set."""
        values = {k: v for k, v in kwargs.items() if v is not None}
        if "torch_dtype" in values:
            alias = values.pop("torch_dtype")
            if "dtype" in values and values["dtype"] != alias:
                raise InvalidOptionError(f"dtype={values['dtype']!r} and torch_dtype={alias!r} disagree")
            values["dtype"] = alias
        unknown = sorted(set(values) - set(LOADING_FIELDS))
        if unknown:
            raise InvalidOptionError(
                f"unknown loading option(s) {', '.join(unknown)}; known: {', '.join(LOADING_OPTIONS)}"
            )
        options = cls(**values)
        options._validate()
        return options

    def _validate(self) -> None:
        resolve_dtype(self.dtype)
        check_device(self.device)
        if self.device is not None and self.device_map is not None:
            raise InvalidOptionError(
                "pass device (move after loading) or device_map (place while loading), not both"
            )
        if self.device_map is not None and not isinstance(self.device_map, (str, dict)):
            raise InvalidOptionError(f"device_map must be a string or a dict, got {self.device_map!r}")
        for name in ("attn_implementation", "revision"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidOptionError(f"{name} must be a non-empty string, got {value!r}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise InvalidOptionError(f"cache_dir must be a path, got {self.cache_dir!r}")
        if self.token is not None and not isinstance(self.token, (str, bool)):
            raise InvalidOptionError(f"token must be a string or a boolean, got {type(self.token).__name__}")
        for name in ("trust_remote_code", "local_files_only", "low_cpu_mem_usage"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise InvalidOptionError(f"{name} must be True or False, got {value!r}")
        if self.quantization_config is not None and not (
            isinstance(self.quantization_config, dict) or hasattr(self.quantization_config, "quant_method")
        ):
            raise InvalidOptionError(
                f"quantization_config must be a transformers quantization config (e.g. BitsAndBytesConfig) or a "
                f"dict, got {type(self.quantization_config).__name__}"
            )
        for name in ("model_kwargs", "processor_kwargs"):
            value = getattr(self, name)
            if not isinstance(value, dict) or any(not isinstance(k, str) for k in value):
                raise InvalidOptionError(f"{name} must be a dict of keyword arguments, got {value!r}")
        clash = sorted(set(self.model_kwargs) & (set(LOADING_FIELDS) | {"torch_dtype", "config"}))
        if clash:
            raise InvalidOptionError(f"model_kwargs repeats {', '.join(clash)}: pass them as loading options")

    def key(self) -> tuple[tuple[str, str], ...]:
        """A hashable identity (for sharing one loaded decoder between adapters)."""
        return tuple((f.name, repr(getattr(self, f.name))) for f in dataclasses.fields(self))

    def set_values(self) -> dict[str, Any]:
        """The options that differ from the defaults (for reports)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != (f.default_factory() if callable(f.default_factory) else f.default)  # type: ignore[misc]
        }


LOADING_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(LoadingOptions))
# The loading vocabulary, aliases included (what an error lists).
LOADING_OPTIONS: tuple[str, ...] = (*LOADING_FIELDS, "torch_dtype")


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str | None:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return getattr(torch, _DTYPES[dtype.lower()])
    raise InvalidOptionError(
        f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}, 'auto' or a torch.dtype"
    )


def check_device(device: str | torch.device | int | None) -> torch.device | None:
    """The device, or InvalidOptionError when it does not exist here (no CUDA build, no such GPU, no such type)."""
    import torch

    if device is None:
        return None
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise InvalidOptionError(f"device must be a string like 'cpu' or 'cuda:0', got {device!r}")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise InvalidOptionError(f"unknown device {device!r}: {err}") from None
    if parsed.type == "cpu" or parsed.type == "meta":
        return parsed
    backend = getattr(torch, parsed.type, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise InvalidOptionError(
            f"device {device!r}: this torch build ({torch.__version__}) has no usable {parsed.type} device "
            f"(torch.{parsed.type}.is_available() is False)"
        )
    count = getattr(backend, "device_count", None)
    if parsed.index is not None and count is not None and parsed.index >= count():
        raise InvalidOptionError(f"device {device!r}: only {count()} {parsed.type} device(s) are visible")
    return parsed


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ).lower() in ("1", "true", "yes")


def hub_arguments(options: LoadingOptions, name: str) -> dict[str, Any]:
    """The arguments every ``from_pretrained`` call for ``name`` gets (files, revision, auth)."""
    local_files_only = options.local_files_only
    if local_files_only is None:
        local_files_only = Path(name).is_dir() or _offline()
    arguments: dict[str, Any] = {
        "local_files_only": local_files_only,
        "trust_remote_code": options.trust_remote_code,
    }
    for key in ("revision", "cache_dir", "token"):
        if getattr(options, key) is not None:
            arguments[key] = os.fspath(options.cache_dir) if key == "cache_dir" else getattr(options, key)
    return arguments


def load_model_and_processor(
    name_or_path: str | os.PathLike[str], options: LoadingOptions | None = None, **kwargs: Any
) -> tuple[torch.nn.Module, Any]:
    """``AutoModelForImageTextToText`` + processor (image-only when torchvision is missing).

    ``options`` (or the same names as keyword arguments) are :class:`LoadingOptions`.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    from focus_integrations.processors import load_processor

    if options is None:
        options = LoadingOptions.from_kwargs(**kwargs)
    elif kwargs:
        raise InvalidOptionError("pass loading options either as LoadingOptions or as keywords, not both")
    name = os.fspath(name_or_path)
    is_local = Path(name).is_dir()
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if not is_local and looks_like_path:
        raise ModelNotFoundError(f"no model folder at {name}")
    hub_kwargs = hub_arguments(options, name)

    try:
        config = AutoConfig.from_pretrained(name, **hub_kwargs)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"the config of {name!r} is not valid JSON: {err}") from None
    except (OSError, ValueError) as err:
        where = (
            "in that folder"
            if is_local
            else "locally, and it could not be downloaded (offline, no such repo or revision)"
        )
        raise ModelNotFoundError(
            f"cannot load a model config for {name!r}: not found {where}. ({err})"
        ) from None
    model_type = getattr(config, "model_type", "?")
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and not options.trust_remote_code:
        raise UnsupportedModelError(
            f"{name!r} is a {model_type!r} model, not an image-text-to-text (vision-language) model"
        )

    model_kwargs: dict[str, Any] = dict(hub_kwargs) | dict(options.model_kwargs)
    dtype = resolve_dtype(options.dtype)
    if dtype is not None:
        model_kwargs["dtype"] = dtype
    for key in ("device_map", "attn_implementation", "quantization_config", "low_cpu_mem_usage"):
        if getattr(options, key) is not None:
            model_kwargs[key] = getattr(options, key)
    model = _load_model(AutoModelForImageTextToText, name, config, model_kwargs)
    if options.device is not None:
        model = model.to(options.device)
    model.eval()
    processor = load_processor(name, **(hub_kwargs | dict(options.processor_kwargs)))
    return model, processor


def _load_model(auto_class: Any, name: str, config: Any, kwargs: dict[str, Any]) -> torch.nn.Module:
    """``from_pretrained`` with its failures sorted into the library's errors."""
    from safetensors import SafetensorError

    try:
        return auto_class.from_pretrained(name, config=config, **kwargs)
    except ImportError as err:  # a backend these options need: accelerate, bitsandbytes, flash-attn, ...
        raise InvalidOptionError(
            f"cannot load {name!r} with these options, a package is missing: {err}"
        ) from None
    except SafetensorError as err:
        raise CheckpointError(
            f"the weights of {name!r} are damaged (truncated or not a safetensors file): {err}"
        ) from None
    except OSError as err:
        raise ModelNotFoundError(f"cannot load the weights of {name!r}: {err}") from None
    except (ValueError, TypeError, AssertionError) as err:  # transformers' checks of the loading arguments
        raise InvalidOptionError(f"cannot load {name!r} with these options: {err}") from None
    except RuntimeError as err:  # the state dict does not fit the config (size mismatch, ...)
        raise CheckpointError(f"the weights of {name!r} do not load: {err}") from None
