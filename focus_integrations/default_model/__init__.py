"""The project's own small vision-language model, shipped with the package (see MODEL_CARD.md here).

A ``LlavaForConditionalGeneration`` of stock transformers parts, trained on easy-vqa by
``scripts/train_default_model.py``. It answers questions about coloured shapes and nothing else; it exists
so that every command and example runs offline and shows real multi-image behaviour, leakage included.
"""

from __future__ import annotations

from pathlib import Path

from focus_integrations.errors import ModelNotFoundError

_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json")


def default_model_path() -> Path:
    """Folder of the bundled default model, loadable with ``FocusDecoder.from_pretrained``."""
    folder = Path(__file__).resolve().parent
    missing = [name for name in _REQUIRED if not (folder / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"the bundled default model is incomplete at {folder} (missing {', '.join(missing)}); "
            "reinstall focus-integrations or retrain it with scripts/train_default_model.py"
        )
    return folder


__all__ = ["default_model_path"]
