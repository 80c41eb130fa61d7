"""What ChatFocus reports besides the text: log-probabilities (logprobs=True), model_provider, the profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from PIL import Image

from focus_integrations.default_model import default_model_path
from focus_integrations.errors import InvalidOptionError
from focus_integrations.langchain import ChatFocus


@pytest.fixture
def question(image_files: dict[str, Path]) -> list[HumanMessage]:
    return [
        HumanMessage(
            content=[
                {"type": "image", "url": f"file://{image_files['red']}"},
                {"type": "image", "url": f"file://{image_files['blue']}"},
                {"type": "text", "text": "Which one is red?"},
            ]
        )
    ]


def test_logprobs_follow_openai_s_shape_and_equal_the_engine_s(llm: ChatFocus, question, image_files) -> None:
    message = llm.invoke(question, logprobs=True, top_logprobs=2)
    content = message.response_metadata["logprobs"]["content"]
    engine = llm.focus_decoder.generate(
        images=[Image.open(image_files["red"]), Image.open(image_files["blue"])],
        prompt="Which one is red?",
        max_new_tokens=8,
        seed=0,
        top_logprobs=2,
    )
    expected = [e for e in engine.logprobs if e.token_id not in llm.focus_decoder.eos_token_ids]
    assert [entry["token"] for entry in content] == [e.token for e in expected]
    assert [entry["logprob"] for entry in content] == pytest.approx([e.logprob for e in expected], abs=1e-4)
    for entry, e in zip(content, expected):
        assert entry["bytes"] == list(e.token.encode("utf-8"))
        assert [t["token"] for t in entry["top_logprobs"]] == [t for _, t, _ in e.top]
        assert all(t["logprob"] <= 0 for t in entry["top_logprobs"])
    assert message.response_metadata["logprobs"]["refusal"] is None
    if all("\ufffd" not in entry["token"] for entry in content):
        assert "".join(entry["token"] for entry in content) == message.content
    # Streamed: the same list, on the aggregated message.
    chunks = list(llm.stream(question, logprobs=True, top_logprobs=2))
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.response_metadata["logprobs"]["content"] == content
    assert "logprobs" not in llm.invoke(question).response_metadata  # only when asked


def test_logprobs_as_a_field_and_validated(qwen_path: str, question) -> None:
    llm = ChatFocus(model=qwen_path, max_tokens=3, seed=0, logprobs=True)
    as_field = llm.invoke(question).response_metadata["logprobs"]["content"]
    per_call = ChatFocus(model=qwen_path, max_tokens=3, seed=0).invoke(question, logprobs=True)
    assert as_field and as_field == per_call.response_metadata["logprobs"]["content"]  # same as per call
    with pytest.raises(InvalidOptionError, match="top_logprobs must be an integer from 0 to 20"):
        ChatFocus(model=qwen_path, top_logprobs=50)


def test_model_provider_is_set_once_on_messages_and_chunks(llm: ChatFocus, question) -> None:
    assert llm.invoke(question).response_metadata["model_provider"] == "focus"
    chunks = list(llm.stream(question))
    assert all(chunk.response_metadata.get("model_provider") == "focus" for chunk in chunks)
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.response_metadata["model_provider"] == "focus"  # merged, not "focusfocus..."


def test_profile_tool_calling_says_whether_the_template_renders_tools(
    qwen_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import focus_integrations.loading as loading

    default = str(default_model_path()) + "/"  # spelled so no other test's shared decoder answers for it
    assert ChatFocus(model=qwen_path).profile["tool_calling"] is True  # Qwen2.5-VL's template has tools
    real, loads = loading.load_model_and_processor, []
    monkeypatch.setattr(loading, "load_model_and_processor", lambda *a, **k: loads.append(a) or real(*a, **k))
    lazy = ChatFocus(model=default, dtype="float32")
    assert lazy.profile["tool_calling"] is False  # the default model's LLaVA template has no tool syntax
    assert loads == []  # known from the processor alone: no weights were loaded
    assert ChatFocus(decoder=lazy.focus_decoder).profile["tool_calling"] is False
    assert "tool_calling" not in ChatFocus(model="no-such-org/not-on-disk").profile  # unknown offline


def test_logprobs_leave_out_the_end_token_the_call_itself_asked_for(
    llm: ChatFocus, question, image_files
) -> None:
    # A call's own eos_token_id ends the answer; the reported log-probs must drop THAT end token (not only
    # the decoder's default ones), as they drop a default end.
    engine = llm.focus_decoder.generate(
        images=[Image.open(image_files["red"]), Image.open(image_files["blue"])],
        prompt="Which one is red?",
        max_new_tokens=8,
        seed=0,
        logprobs=True,
    )
    ids = engine.token_ids
    cut = next(i for i in range(1, len(ids)) if ids[i] not in ids[:i])  # the first token not seen before
    message = llm.invoke(question, logprobs=True, eos_token_id=ids[cut])
    assert message.response_metadata["finish_reason"] == "stop"
    content = message.response_metadata["logprobs"]["content"]
    assert [entry["token"] for entry in content] == [e.token for e in engine.logprobs[:cut]]
