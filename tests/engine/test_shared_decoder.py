"""One loaded decoder per checkpoint and loading options, shared across adapters (focus_integrations.shared)."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import pytest
import torch

from focus_integrations import FocusDecoder
from focus_integrations.shared import decoder_key, shared_decoder
from focus_integrations.testing.tiny_models import tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return tiny_checkpoint("qwen2_5_vl")


def test_equal_requests_spelled_differently_have_one_key(checkpoint: Path, tmp_path: Path) -> None:
    relative = os.path.relpath(checkpoint)
    same = [
        decoder_key(checkpoint, {}),
        decoder_key(relative, {"dtype": None, "trust_remote_code": False}),  # unset and default
        decoder_key(str(checkpoint) + "/", {"device_map": None}),
    ]
    assert len(set(same)) == 1
    assert decoder_key(checkpoint, {"dtype": "float32"}) == decoder_key(
        checkpoint, {"torch_dtype": torch.float32}
    )
    assert decoder_key(checkpoint, {"device": "cpu"}) == decoder_key(
        checkpoint, {"device": torch.device("cpu")}
    )
    assert decoder_key(checkpoint, {"model_kwargs": {"b": 1, "a": [1, 2]}}) == decoder_key(
        checkpoint, {"model_kwargs": {"a": (1, 2), "b": 1}}
    )
    different = [
        decoder_key(checkpoint, {}),
        decoder_key(checkpoint, {"dtype": "bfloat16"}),
        decoder_key(checkpoint, {"device": "meta"}),
        decoder_key(checkpoint, {"revision": "v2"}),
        decoder_key(checkpoint, {"attn_implementation": "sdpa"}),
        decoder_key(checkpoint, {"model_kwargs": {"a": 1}}),
        decoder_key(checkpoint, {"quantization_config": {"load_in_4bit": True}}),
        decoder_key(tmp_path, {}),
    ]
    assert len(set(different)) == len(different)


def test_adapters_share_one_decoder_and_free_it_with_the_last_one(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("llama_index.core")
    pytest.importorskip("langchain_core")
    from focus_integrations.langchain import ChatFocus
    from focus_integrations.llama_index import FocusMultiModalLLM

    loads = _count_loads(monkeypatch)
    first = FocusMultiModalLLM(str(checkpoint), dtype="float32", max_new_tokens=4)
    second = FocusMultiModalLLM(os.path.relpath(checkpoint), dtype="float32", mode="vanilla")
    chat = ChatFocus(model=str(checkpoint), dtype=torch.float32)
    assert first.decoder is second.decoder is chat.focus_decoder
    assert len(loads) == 1
    other = FocusMultiModalLLM(str(checkpoint))  # the loader's own dtype choice: another request
    assert other.decoder is not first.decoder and len(loads) == 2
    watcher = _collected(first.decoder)
    del first, second, chat
    gc.collect()
    assert watcher.is_set()  # nothing else kept the weights alive
    assert other.decoder is shared_decoder(checkpoint)


def test_threads_asking_at_once_load_once(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _count_loads(monkeypatch, delay=0.2)
    results: list[FocusDecoder] = []
    threads = [threading.Thread(target=lambda: results.append(shared_decoder(checkpoint))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 4 and all(decoder is results[0] for decoder in results)
    assert len(loads) == 1


def _count_loads(monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> list[str]:
    """Record every checkpoint load (the loader's calls), optionally slowed down."""
    import focus_integrations.loading as loading

    loads: list[str] = []
    real = loading.load_model_and_processor

    def counting(name_or_path, *args, **kwargs):
        loads.append(str(name_or_path))
        threading.Event().wait(delay)
        return real(name_or_path, *args, **kwargs)

    monkeypatch.setattr(loading, "load_model_and_processor", counting)
    return loads


def _collected(obj: object) -> threading.Event:
    import weakref

    event = threading.Event()
    weakref.finalize(obj, event.set)
    return event
