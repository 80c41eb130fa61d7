"""ChatFocus options: the engine's vocabulary, loading options, chat-template options, None = not set."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from focus_lc_helpers import png_b64
from langchain_core.messages import HumanMessage

from focus_integrations.errors import InvalidOptionError
from focus_integrations.langchain import ChatFocus


def _two_images() -> list[HumanMessage]:
    content = [
        {"type": "image", "base64": png_b64("red"), "mime_type": "image/png"},
        {"type": "image", "base64": png_b64("blue", (24, 32)), "mime_type": "image/png"},
        {"type": "text", "text": "Which one?"},
    ]
    return [HumanMessage(content=content)]


def test_temperature_zero_is_greedy_and_positive_samples(llm: ChatFocus) -> None:
    greedy = llm.invoke(_two_images(), temperature=0).response_metadata["focus"]
    assert greedy["do_sample"] is False
    sampled = llm.invoke(_two_images(), temperature=1.5).response_metadata["focus"]
    assert (sampled["do_sample"], sampled["temperature"]) == (True, 1.5)


def test_any_engine_option_per_call_and_generate_kwargs(qwen_path: str) -> None:
    llm = ChatFocus(model=qwen_path, max_tokens=3, seed=0, generate_kwargs={"min_new_tokens": 3})
    message = llm.invoke(_two_images(), no_repeat_ngram_size=2, max_new_tokens=3)
    focus = message.response_metadata["focus"]
    assert (focus["min_new_tokens"], focus["no_repeat_ngram_size"]) == (3, 2)
    assert message.usage_metadata["output_tokens"] == 3
    with pytest.raises(InvalidOptionError, match="no meaning"):
        llm.invoke(_two_images(), num_beams=2)
    with pytest.raises(InvalidOptionError, match="loading option"):
        llm.invoke(_two_images(), device="cpu")


def test_one_stop_string_is_one_stop(llm: ChatFocus) -> None:
    assert llm.invoke(_two_images(), stop="END").response_metadata["focus"]["stop"] == ["END"]
    assert ChatFocus(model=llm.model, stop_sequences="END").stop == ["END"]


def test_chat_template_kwargs_field_and_per_call(qwen_path: str) -> None:
    plain = ChatFocus(model=qwen_path, max_tokens=1, seed=0)
    labelled = ChatFocus(model=qwen_path, max_tokens=1, seed=0, chat_template_kwargs={"add_vision_id": True})
    base = plain.invoke(_two_images()).usage_metadata["input_tokens"]
    assert labelled.invoke(_two_images()).usage_metadata["input_tokens"] > base
    per_call = plain.invoke(_two_images(), chat_template_kwargs={"add_vision_id": True})
    assert per_call.usage_metadata["input_tokens"] > base
    assert labelled.get_num_tokens_from_messages(_two_images()) > plain.get_num_tokens_from_messages(
        _two_images()
    )


def test_loading_options_reach_the_model(qwen_path: str) -> None:
    llm = ChatFocus(model=qwen_path, attn_implementation="eager", torch_dtype="float32")
    assert llm.focus_decoder.model.config._attn_implementation == "eager"
    with pytest.raises(InvalidOptionError, match="loading options only apply"):
        ChatFocus(decoder=llm.focus_decoder, attn_implementation="sdpa")


def test_none_keeps_the_checkpoints_settings(qwen_path: str, tmp_path: Any) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(qwen_path, folder)
    (folder / "focus_config.json").write_text(json.dumps({"alpha": 0.6}))
    config = json.loads((folder / "generation_config.json").read_text()) | {"max_new_tokens": 2}
    (folder / "generation_config.json").write_text(json.dumps(config))
    llm = ChatFocus(model=str(folder), alpha=None, max_tokens=None, seed=0)
    message = llm.invoke(_two_images())
    assert message.response_metadata["focus"]["alpha"] == 0.6
    assert message.usage_metadata["output_tokens"] <= 2
