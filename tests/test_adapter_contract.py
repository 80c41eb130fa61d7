"""Both adapters' constructors: the same error type, with the same message, for the same mistake."""

from __future__ import annotations

import pytest

from focus_integrations.errors import InvalidOptionError
from focus_integrations.testing.tiny_models import tiny_checkpoint

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

MISTAKES = [
    ({"alpah": 0.3}, "alpah"),
    ({"alpha": float("inf")}, "alpha must be a finite number"),
    ({"alpha": "0.5"}, "alpha must be a finite number"),
    ({"top_k": True}, "top_k must be an integer"),
    ({"temperature": float("nan")}, "temperature must be a finite number"),
    ({"seed": -1}, "seed must be an integer in 0..2\\*\\*64-1"),
    ({"do_sample": "false"}, "do_sample must be True or False"),
    ({"noise": ["gray"]}, "unknown noise mode"),
    ({"noise_severity": 0}, "noise_severity must be an integer in 1..5"),
    ({"stop": 5}, "stop must be"),
    ({"device": "tpu"}, "unknown device"),
    ({"chat_template_kwargs": {"tokenize": True}}, "cannot set tokenize"),
]


@pytest.fixture(scope="module")
def decoder():
    from focus_integrations import FocusDecoder

    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_vl"))


@pytest.mark.parametrize("kwargs, message", MISTAKES)
def test_the_same_mistake_is_the_same_error_in_both_adapters(decoder, kwargs, message) -> None:
    from focus_integrations.langchain import ChatFocus
    from focus_integrations.llama_index import FocusMultiModalLLM

    model = str(tiny_checkpoint("qwen2_vl"))
    field = dict(kwargs)
    if "do_sample" in field:  # ChatFocus has no do_sample field: the same option goes in generate_kwargs
        field = {"generate_kwargs": field}
    with pytest.raises(InvalidOptionError, match=message) as langchain_error:
        ChatFocus(model=model, **field)
    with pytest.raises(InvalidOptionError, match=message) as llama_index_error:
        FocusMultiModalLLM(model, **kwargs)
    assert type(langchain_error.value) is type(llama_index_error.value) is InvalidOptionError
