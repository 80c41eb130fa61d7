"""Processors that load without torchvision.

Several VLM processors (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision, InternVL, SmolVLM) have a video
slot. ``ProcessorMixin`` derives its sub-processor slots from the ``__init__`` signature, refuses ``None``
for any of them, and ``AutoVideoProcessor`` needs torchvision: without torchvision these processors can be
neither constructed nor loaded, although FOCUS only ever needs their image path.

The image-only classes here are subclasses whose ``__init__`` has the base signature minus
``video_processor`` and call the base with ``video_processor=None``. The signature keeps NAMED parameters
(generated from the installed base class, so it follows the transformers version): ``from_args_and_dict``
reads ``__init__.__code__.co_varnames`` to decide which saved kwargs (``chat_template``,
``image_seq_length``, ``num_image_tokens``, ...) to pass back, and a ``*args, **kwargs`` wrapper would
silently drop them. They save under the base class name, so a folder they write loads anywhere with
``AutoProcessor``.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from focus_integrations.errors import ModelNotFoundError, UnsupportedModelError

_IMAGE_ONLY_SUFFIX = "ImageOnly"


class VideoNotSupportedError(UnsupportedModelError):
    """An image-only processor (loaded without torchvision) was given videos."""


def _conversation_has_video(conversation: Any) -> bool:
    conversations = conversation if conversation and isinstance(conversation[0], list) else [conversation]
    return any(
        isinstance(item, dict) and item.get("type") == "video"
        for conv in conversations
        for message in conv
        if isinstance(message, dict)
        for item in (message.get("content") if isinstance(message.get("content"), list) else ())
    )


def _skip_video_defaults_in_chat_template(base: type) -> dict[str, Any]:
    # SmolVLMProcessor.apply_chat_template reads self.video_processor.num_frames / .fps to set video defaults
    # even for image-only conversations; with no video slot that is an AttributeError. Skip straight to the
    # generic ProcessorMixin implementation, which is what SmolVLM's override ends up calling.
    from transformers.processing_utils import ProcessorMixin

    def apply_chat_template(
        self: Any, conversation: Any, chat_template: str | None = None, **kwargs: Any
    ) -> Any:
        if _conversation_has_video(conversation):
            raise VideoNotSupportedError(f"{type(self).__name__} was loaded without a video processor")
        return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)

    return {"apply_chat_template": apply_chat_template}


# Processor class name (as in processor_config.json / tokenizer_config.json "processor_class") -> the
# family's extra image-only behaviour: a function base class -> attributes to override (None: nothing extra).
# The ONLY per-family table of this module.
_VIDEO_SLOT_PROCESSORS: dict[str, Callable[[type], dict[str, Any]] | None] = {
    "Qwen2VLProcessor": None,
    "Qwen2_5_VLProcessor": None,
    "Qwen3VLProcessor": None,
    "LlavaOnevisionProcessor": None,
    "InternVLProcessor": None,
    "SmolVLMProcessor": _skip_video_defaults_in_chat_template,
}


def _refuse_videos(base: type) -> Any:
    call_signature = inspect.signature(base.__call__)

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Without this, ProcessorMixin silently drops videos when the processor has no video slot.
        try:
            videos = call_signature.bind_partial(self, *args, **kwargs).arguments.get("videos")
        except TypeError:
            videos = kwargs.get("videos")
        if videos is not None:
            raise VideoNotSupportedError(f"{type(self).__name__} was loaded without a video processor")
        return base.__call__(self, *args, **kwargs)

    __call__.__doc__ = base.__call__.__doc__
    return __call__


def _image_only_init(base: type) -> Any:
    """Build ``__init__`` with ``base.__init__``'s named parameters minus ``video_processor``."""
    signature = inspect.signature(base.__init__)
    params = [p for name, p in signature.parameters.items() if name not in ("self", "video_processor")]
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    header, forward = ["self"], []
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            header.append(f"**{p.name}")
            forward.append(f"**{p.name}")
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            raise TypeError(f"{base.__name__}.__init__ takes *{p.name}; cannot derive an image-only class")
        else:
            header.append(f"{p.name}=_defaults[{p.name!r}]" if p.name in defaults else p.name)
            forward.append(f"{p.name}={p.name}")
    # Generated source, because only a real function gets real co_varnames (see module docstring).
    source = (
        f"def __init__({', '.join(header)}):\n"
        f"    _base.__init__(self, video_processor=None, {', '.join(forward)})\n"
    )
    namespace: dict[str, Any] = {"_base": base, "_defaults": defaults}
    exec(compile(source, f"<image-only {base.__name__}.__init__>", "exec"), namespace)
    init = namespace["__init__"]
    init.__doc__ = f"{base.__name__}.__init__ without the video processor slot."
    return init


def _stock_name_to_dict(base: type) -> Any:
    def to_dict(self: Any) -> dict[str, Any]:
        output = base.to_dict(self)
        # Saved as the stock class: the folder then loads with AutoProcessor wherever torchvision exists.
        output["processor_class"] = base.__name__
        return output

    return to_dict


@functools.cache
def _build_image_only_class(name: str) -> type:
    import transformers

    base = getattr(transformers, name)
    attrs: dict[str, Any] = {
        "__init__": _image_only_init(base),
        "__module__": __name__,
        "__doc__": f"{name} without a video processor (loads without torchvision; images only).",
        "to_dict": _stock_name_to_dict(base),
        "__call__": _refuse_videos(base),
    }
    extra = _VIDEO_SLOT_PROCESSORS[name]
    if extra is not None:
        attrs.update(extra(base))
    cls = type(f"{name.removesuffix('Processor')}{_IMAGE_ONLY_SUFFIX}Processor", (base,), attrs)
    return cls


def image_only_processor_class(name: str) -> type | None:
    """Image-only subclass for a processor class name, or None when the class has no video slot.

    ``name`` is the class name as saved in ``processor_config.json`` (``"Qwen2_5_VLProcessor"``); the
    image-only class's own name is accepted too.
    """
    for base_name in _VIDEO_SLOT_PROCESSORS:
        if name in (base_name, f"{base_name.removesuffix('Processor')}{_IMAGE_ONLY_SUFFIX}Processor"):
            return _build_image_only_class(base_name)
    return None


def image_only_processor_names() -> tuple[str, ...]:
    """Names of the processor classes that have an image-only replacement."""
    return tuple(_VIDEO_SLOT_PROCESSORS)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _processor_class_name(name_or_path: str | os.PathLike[str], **hub_kwargs: Any) -> str | None:
    """``processor_class`` saved with a checkpoint (local folder or a cached hub repo), else None."""
    folder = Path(name_or_path)
    for filename in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        if folder.is_dir():
            path: Path | None = folder / filename if (folder / filename).is_file() else None
        else:
            path = _cached_hub_file(str(name_or_path), filename, **hub_kwargs)
        if path is not None:
            name = _read_json(path).get("processor_class")
            if isinstance(name, str):
                return name
    return None


def _cached_hub_file(repo_id: str, filename: str, **hub_kwargs: Any) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    kwargs = {k: hub_kwargs[k] for k in ("cache_dir", "revision") if hub_kwargs.get(k) is not None}
    try:
        found = try_to_load_from_cache(repo_id, filename, **kwargs)
    except ValueError:  # not a valid repo id
        return None
    return Path(found) if isinstance(found, str) else None


def _is_missing_video_backend(error: BaseException) -> bool:
    """True when ``error`` (or its cause chain) says the video processor could not be built."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower().replace("_", " ")
        # ImportError from AutoVideoProcessor / the torchvision backend, or OSError "Can't load video
        # processor" for a folder saved without one (as image-only processors save).
        if isinstance(current, ImportError) and ("torchvision" in text or "video" in text):
            return True
        if "video processor" in text or "videoprocessor" in text or "torchvision" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


def load_processor(name_or_path: str | os.PathLike[str], **from_pretrained_kwargs: Any) -> Any:
    """Load a checkpoint's processor; fall back to its image-only class when videos cannot be supported.

    Tries ``AutoProcessor.from_pretrained`` first. If that fails because the video processor cannot be
    built (no torchvision, or a folder saved without one) and the checkpoint's processor class has a video
    slot, loads the image-only subclass (see :func:`image_only_processor_class`) from the same files with
    the same kwargs. A hub id is read from the local Hugging Face cache only (``local_files_only=True``)
    unless the caller passes ``local_files_only=False``.

    Raises:
        ModelNotFoundError: the folder or hub repo (when offline: its cached files) is missing or incomplete.
        UnsupportedModelError: the checkpoint has no multimodal processor usable here (a text-only
            tokenizer, or a processor that fails to build for another reason).
    """
    from transformers import AutoProcessor

    where = os.fspath(name_or_path)
    if _looks_like_local_path(name_or_path):
        where = os.path.expanduser(where)
        if not Path(where).is_dir():
            raise ModelNotFoundError(f"no checkpoint folder at {where!r}")
    else:
        # A hub id loads from the local cache unless the caller allows downloads explicitly: no request to
        # the Hub, so no hang on a machine without network.
        from_pretrained_kwargs.setdefault("local_files_only", True)
    try:
        processor = AutoProcessor.from_pretrained(where, **from_pretrained_kwargs)
    except Exception as error:  # classified below, re-raised with the cause attached
        auto_error = error
    else:
        return _require_image_processor(processor, where)

    class_name = _processor_class_name(where, **from_pretrained_kwargs)
    image_only = image_only_processor_class(class_name) if class_name else None
    if image_only is not None and _is_missing_video_backend(auto_error):
        try:
            processor = image_only.from_pretrained(where, **from_pretrained_kwargs)
        except OSError as error:
            raise ModelNotFoundError(f"cannot load the processor of {where!r}: {error}") from error
        except Exception as error:
            raise UnsupportedModelError(
                f"cannot build the image-only {class_name} of {where!r}: {error}"
            ) from error
        return _require_image_processor(processor, where)
    if isinstance(auto_error, OSError):
        raise ModelNotFoundError(f"cannot load a processor from {where!r}: {auto_error}") from auto_error
    raise UnsupportedModelError(
        f"cannot load the processor of {where!r} ({class_name or 'unknown class'}): {auto_error}"
    ) from auto_error


def _looks_like_local_path(name_or_path: str | os.PathLike[str]) -> bool:
    # Hub ids are "name" or "org/name"; anything else is meant as a folder (and must not be sent to the Hub).
    if isinstance(name_or_path, os.PathLike):
        return True
    return (
        name_or_path.startswith((".", "/", "~"))
        or name_or_path.count("/") > 1
        or os.sep != "/"
        and os.sep in name_or_path
    )


def _require_image_processor(processor: Any, where: str) -> Any:
    # AutoProcessor falls back to a bare tokenizer for text-only checkpoints: not usable with images.
    if getattr(processor, "image_processor", None) is None:
        raise UnsupportedModelError(
            f"{where!r} has no image processor ({type(processor).__name__}): not a vision-language checkpoint"
        )
    return processor


__all__ = [
    "VideoNotSupportedError",
    "image_only_processor_class",
    "image_only_processor_names",
    "load_processor",
]
