"""Process-wide pieces of ``ChatFocus``: one decoder per checkpoint (``focus_integrations.shared``), and the
worker-thread bridge for async (``focus_integrations.adapters.iterate_in_thread``, shared with LlamaIndex)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from focus_integrations.adapters import iterate_in_thread

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.loading import LoadingOptions

__all__ = ["_shared_decoder", "iterate_in_thread"]


def _shared_decoder(name_or_path: str, loading: LoadingOptions) -> FocusDecoder:
    """The process-wide decoder for this checkpoint (``focus_integrations.shared``: the same one every
    ChatFocus and FocusMultiModalLLM naming it with the same loading options uses)."""
    from focus_integrations.shared import shared_decoder

    return shared_decoder(name_or_path, **loading.set_values())
