"""A checkpoint's ``focus_config.json``: FOCUS decoding defaults validated for that model (one layer of the
precedence, below the decoder's defaults and above its ``generation_config.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from focus_integrations.errors import InvalidOptionError
from focus_integrations.options import DecodingOptions
from focus_integrations.vocabulary import decoding_layer

FOCUS_CONFIG = "focus_config.json"


def read_focus_config(name: str, hub_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Decoding defaults from ``focus_config.json`` of a checkpoint: a local folder, or a hub repo's files in
    the local cache (the same revision and cache folder as the weights). Absent: none."""
    from focus_integrations.processors import _cached_hub_file as cached_hub_file

    path: Path | None = Path(name) / FOCUS_CONFIG
    if not Path(name).is_dir():
        path = cached_hub_file(name, FOCUS_CONFIG, **hub_kwargs)
    if path is None or not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InvalidOptionError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(values, dict):
        raise InvalidOptionError(f"{path} must hold a JSON object of decoding options")
    # Unknown keys or bad values: a clear error now, not at the first call.
    DecodingOptions.from_layers((FOCUS_CONFIG, decoding_layer(values, where=f"in {path}")))
    return values
