"""One loaded decoder per checkpoint and loading options, shared by every adapter of the process.

``ChatFocus(model=...)`` and ``FocusMultiModalLLM(model=...)`` (and anything else that calls
:func:`shared_decoder`) naming the same checkpoint with the same loading options get the same
:class:`~focus_integrations.FocusDecoder`: the weights are loaded once and one lock serialises their use. The
registry holds decoders weakly: when the last adapter using one is gone, its memory is freed.

The key is the checkpoint (a local folder by its resolved path) and EVERY loading argument, normalised, so
equal requests spelled differently share (``dtype="float32"`` and ``torch.float32``, ``device="cpu"`` and
``torch.device("cpu")``, an argument left out and the same argument given its default value), while any
real difference (another dtype, device, revision, attention implementation, quantization config or
``model_kwargs`` entry) loads a decoder of its own.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder

_DECODERS: weakref.WeakValueDictionary[Hashable, FocusDecoder] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()
_KEY_LOCKS: dict[Hashable, threading.Lock] = {}  # one per key: a slow load does not block other checkpoints


def shared_decoder(name_or_path: str | os.PathLike[str], **loading: Any) -> FocusDecoder:
    """The process's decoder for ``name_or_path`` loaded with ``loading`` (``FocusDecoder.from_pretrained``
    arguments), loading it on first use. Two threads asking at once load it once."""
    from focus_integrations.decoder import FocusDecoder

    key = decoder_key(name_or_path, loading)
    with _LOCK:
        decoder = _DECODERS.get(key)
        if decoder is not None:
            return decoder
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:
        decoder = _DECODERS.get(key)
        if decoder is None:
            decoder = FocusDecoder.from_pretrained(name_or_path, **loading)
            _DECODERS[key] = decoder
        return decoder


def loaded_decoder(name_or_path: str | os.PathLike[str], **loading: Any) -> FocusDecoder | None:
    """The shared decoder for these arguments if one is loaded already, else None (never loads)."""
    with _LOCK:
        return _DECODERS.get(decoder_key(name_or_path, loading))


def decoder_key(name_or_path: str | os.PathLike[str], loading: Mapping[str, Any]) -> Hashable:
    """The registry key: the checkpoint and the normalised loading arguments (see the module docstring)."""
    name = os.fspath(name_or_path)
    if Path(name).is_dir():
        name = str(Path(name).resolve())
    values = dict(loading)
    options = values.pop("loading", None)  # a LoadingOptions object: the same as its arguments spelled out
    if options is not None:
        values = options.set_values() | values
    if "torch_dtype" in values and values.get("dtype") is None:
        values["dtype"] = values.pop("torch_dtype")
    defaults = _loading_defaults()
    items = []
    for arg, value in values.items():
        if value is None or (arg in defaults and _same(value, defaults[arg])):
            continue  # "not set" and "set to the default" load the same model
        items.append((arg, _normalised(arg, value)))
    return (name, tuple(sorted(items)))


def _loading_defaults() -> dict[str, Any]:
    """Loading arguments whose default is not ``None`` (``None`` means "not set" for all the others)."""
    return {"trust_remote_code": False, "model_kwargs": {}, "processor_kwargs": {}}


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:  # noqa: BLE001 - objects whose == misbehaves are simply not the default
        return False


def _normalised(arg: str, value: Any) -> Hashable:
    import torch

    if arg in ("dtype", "torch_dtype") and isinstance(value, str) and value != "auto":
        from focus_integrations.loading import resolve_dtype

        value = resolve_dtype(value)
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if arg == "device" and isinstance(value, (str, int, torch.device)) and not isinstance(value, bool):
        try:
            return str(torch.device(value))
        except (RuntimeError, TypeError, ValueError):
            return repr(value)  # the loader reports a bad device; as a key it is just itself
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _normalised(str(k), v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_normalised(arg, v) for v in value)
    to_dict = getattr(value, "to_dict", None)  # transformers' quantization configs
    if callable(to_dict):
        return (type(value).__qualname__, _normalised(arg, to_dict()))
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value
