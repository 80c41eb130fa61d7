"""FocusMultiModalLLM options: the engine's vocabulary, loading options, chat-template options."""

from __future__ import annotations

import pytest
from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock

from focus_integrations.errors import InvalidOptionError
from focus_integrations.llama_index import FocusMultiModalLLM


def _user(images) -> list[ChatMessage]:
    blocks = [ImageBlock(path=path) for path in images] + [TextBlock(text="Which one?")]
    return [ChatMessage(role="user", blocks=blocks)]


def test_temperature_means_what_it_means_everywhere(decoder, image_files):
    assert FocusMultiModalLLM(decoder=decoder, temperature=1.5).effective_options().do_sample is True
    assert FocusMultiModalLLM(decoder=decoder, temperature=0).effective_options().do_sample is False
    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=2, seed=0)
    raw = llm.chat(_user(image_files), temperature=1.5, max_tokens=1).raw
    assert raw["settings"]["do_sample"] is True and raw["usage"]["output_tokens"] == 1


def test_chat_template_kwargs_field_and_per_call(decoder, image_files):
    plain = FocusMultiModalLLM(decoder=decoder, max_new_tokens=1, seed=0)
    labelled = FocusMultiModalLLM(
        decoder=decoder, max_new_tokens=1, seed=0, chat_template_kwargs={"add_vision_id": True}
    )
    base = plain.chat(_user(image_files)).raw["usage"]["input_tokens"]
    assert labelled.chat(_user(image_files)).raw["usage"]["input_tokens"] > base
    per_call = plain.chat(_user(image_files), chat_template_kwargs={"add_vision_id": True})
    assert per_call.raw["usage"]["input_tokens"] > base


def test_loading_options_reach_the_model(tiny_checkpoint):
    llm = FocusMultiModalLLM(tiny_checkpoint("llava"), attn_implementation="eager", torch_dtype="float32")
    assert llm.decoder.model.config._attn_implementation == "eager"


def test_misspelled_and_mistyped_fields_raise(decoder):
    with pytest.raises(InvalidOptionError, match="alpah"):
        FocusMultiModalLLM(decoder=decoder, alpah=0.3)
    with pytest.raises(InvalidOptionError, match="top_k"):
        FocusMultiModalLLM(decoder=decoder, top_k=True)
    with pytest.raises(InvalidOptionError, match="generate_kwargs"):
        FocusMultiModalLLM(decoder=decoder, generate_kwargs=["min_new_tokens"])
