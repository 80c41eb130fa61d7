"""Process-wide pieces of ``ChatFocus``: one decoder per checkpoint, and the worker-thread bridge for async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.loading import LoadingOptions

T = TypeVar("T")


def _shared_decoder(name_or_path: str, loading: LoadingOptions) -> FocusDecoder:
    """The process-wide decoder for this checkpoint (``focus_integrations.shared``: the same one every
    ChatFocus and FocusMultiModalLLM naming it with the same loading options uses)."""
    from focus_integrations.shared import shared_decoder

    return shared_decoder(name_or_path, **loading.set_values())


async def iterate_in_thread(
    make_items: Callable[[threading.Event], Iterator[T]], *, name: str = "ChatFocus-decode"
) -> AsyncIterator[T]:
    """``make_items(cancelled)`` run in a worker thread, its items bridged through an asyncio queue: the
    loop never blocks.

    If the consumer stops (cancellation, ``aclose``), ``cancelled`` is set, the worker stops at the next item
    and closes the iterator (which closes the engine stream and frees the decoder for other calls).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()

    def put(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            cancelled.set()

    def work() -> None:
        items = make_items(cancelled)
        try:
            for item in items:
                put("item", item)
                if cancelled.is_set():
                    break
        except BaseException as exc:  # re-raised on the loop side
            put("error", exc)
        else:
            put("end", None)
        finally:
            items.close()  # closes the engine stream now, not at garbage collection

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        cancelled.set()
