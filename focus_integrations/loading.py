"""Load a model and its processor from a hub id or a local folder, with clear errors offline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from focus_integrations.errors import InvalidOptionError, ModelNotFoundError, UnsupportedModelError

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise InvalidOptionError(
        f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}, 'auto' or a torch.dtype"
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ).lower() in ("1", "true", "yes")


def load_model_and_processor(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict[str, Any] | None = None,
    local_files_only: bool | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> tuple[torch.nn.Module, Any]:
    """``AutoModelForImageTextToText`` + processor (image-only when torchvision is missing)."""
    from transformers import AutoConfig, AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    from focus_integrations.processors import load_processor

    name = os.fspath(name_or_path)
    is_local = Path(name).is_dir()
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if not is_local and looks_like_path:
        raise ModelNotFoundError(f"no model folder at {name}")
    if local_files_only is None:
        local_files_only = is_local or _offline()
    hub_kwargs: dict[str, Any] = {
        "local_files_only": local_files_only,
        "trust_remote_code": trust_remote_code,
    }
    if revision is not None:
        hub_kwargs["revision"] = revision
    torch_dtype = resolve_dtype(dtype)

    try:
        config = AutoConfig.from_pretrained(name, **hub_kwargs)
    except (OSError, ValueError) as err:
        where = (
            "in that folder"
            if is_local
            else "locally, and it could not be downloaded (offline or no such repo)"
        )
        raise ModelNotFoundError(
            f"cannot load a model config for {name!r}: not found {where}. ({err})"
        ) from None
    model_type = getattr(config, "model_type", "?")
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and not trust_remote_code:
        raise UnsupportedModelError(
            f"{name!r} is a {model_type!r} model, not an image-text-to-text (vision-language) model"
        )

    model_kwargs: dict[str, Any] = dict(hub_kwargs)
    if torch_dtype is not None:
        model_kwargs["dtype"] = torch_dtype
    if device_map is not None:
        model_kwargs["device_map"] = device_map
    try:
        model = AutoModelForImageTextToText.from_pretrained(name, config=config, **model_kwargs)
    except ImportError as err:  # e.g. device_map without accelerate
        raise InvalidOptionError(f"cannot load {name!r} with these options: {err}") from None
    except (OSError, ValueError) as err:
        if "accelerate" in str(err):
            raise InvalidOptionError(f"cannot load {name!r} with these options: {err}") from None
        raise ModelNotFoundError(f"cannot load the weights of {name!r}: {err}") from None
    if device is not None and device_map is None:
        model = model.to(device)
    model.eval()
    processor = load_processor(name, **hub_kwargs)
    return model, processor
