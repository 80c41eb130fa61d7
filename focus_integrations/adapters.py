"""What the framework adapters (LangChain's ``ChatFocus``, LlamaIndex's ``FocusMultiModalLLM``) share, kept
framework-free so both do it the same way:

- :func:`adapter_options`: an adapter's decoding fields (``generate_kwargs`` below the named fields), then a
  call's keywords, as ONE layer of engine options through the core vocabulary (each layer mapped on its own,
  so a named field beats the same option in ``generate_kwargs`` under any of its names);
- :func:`iterate_in_thread`: an engine iterator run in a worker thread and bridged to the event loop, so the
  async methods never block the loop and a consumer that goes away stops the decode at the next item.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, TypeVar

from focus_integrations.options import merge_layers
from focus_integrations.vocabulary import combine_layers

T = TypeVar("T")


def adapter_options(
    fields: Mapping[str, Any], generate_kwargs: Mapping[str, Any] | None, *calls: Mapping[str, Any]
) -> dict[str, Any]:
    """Engine options of an adapter's named ``fields`` (None = not set) over its ``generate_kwargs``, then
    the call layers over those, in the engine's names. The fields (with ``generate_kwargs``) are the adapter's
    defaults for its calls: their mode-specific options hold for the mode they set, not for a call that asks
    another (``options.scope_to_mode``: ``ChatFocus(alpha="n-calibrated").invoke(..., mode="vcd")`` is VCD
    with its own alpha)."""
    adapter = combine_layers(generate_kwargs or {}, fields)
    return merge_layers([("adapter fields", adapter), ("call", combine_layers(*calls))])


async def iterate_in_thread(
    make_items: Callable[[threading.Event], Iterator[T]], *, name: str = "focus-decode"
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
                if cancelled.is_set():
                    break
                put("item", item)
        except BaseException as exc:  # re-raised on the loop side
            put("error", exc)
        else:
            put("end", None)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # closes the engine stream now, not at garbage collection

    # A thread of its own, not the loop's default executor: a long decode must not take one of its workers.
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
