"""invoke / stream / batch and their async forms, concurrency, per-call options, stop, timeout, tokens."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from focus_lc_helpers import png_b64
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from focus_integrations.errors import InvalidOptionError, RequestTimeoutError
from focus_integrations.langchain import ChatFocus


def _two_images(question: str = "Which is cheaper?") -> list[HumanMessage]:
    return [
        HumanMessage(
            content=[
                {"type": "image", "base64": png_b64("red"), "mime_type": "image/png"},
                {"type": "image", "base64": png_b64("blue", (24, 32)), "mime_type": "image/png"},
                {"type": "text", "text": question},
            ]
        )
    ]


def test_stream_equals_invoke_and_reports_usage_once(llm: ChatFocus) -> None:
    message = llm.invoke(_two_images())
    chunks = list(llm.stream(_two_images()))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(c.content for c in chunks) == message.content
    assert [c.chunk_position for c in chunks].count("last") == 1 and chunks[-1].chunk_position == "last"
    assert [c for c in chunks if c.usage_metadata] == [chunks[-1]]
    assert chunks[-1].usage_metadata == message.usage_metadata
    metadata = chunks[-1].response_metadata
    assert metadata["model_name"] == llm.model and metadata["finish_reason"] == "length"
    assert metadata["focus"]["mode"] == "focus" and metadata["focus"]["alpha"] == 0.1


def test_per_call_overrides_reach_the_engine(llm: ChatFocus) -> None:
    message = llm.invoke(_two_images(), mode="vanilla", max_tokens=3, seed=7, noise="gaussian")
    focus = message.response_metadata["focus"]
    assert (focus["mode"], focus["rule"], focus["n_rows"], focus["seed"], focus["noise"]) == (
        "vanilla",
        "vanilla",
        1,
        7,
        "gaussian",
    )
    assert message.usage_metadata["output_tokens"] == 3
    bound = llm.bind(alpha=0.5)
    assert bound.invoke(_two_images()).response_metadata["focus"]["alpha"] == 0.5
    # The instance is untouched by per-call values.
    assert llm.invoke(_two_images()).response_metadata["focus"]["alpha"] == 0.1


def test_fields_reach_the_engine(qwen_path: str) -> None:
    llm = ChatFocus(
        model=qwen_path, mode="vcd", alpha=0.7, noise_scale=0.4, max_tokens=2, temperature=0.5, top_k=5
    )
    focus = llm.invoke(_two_images()).response_metadata["focus"]
    assert (focus["rule"], focus["alpha"], focus["noise_scale"], focus["n_rows"]) == ("vcd", 0.7, 0.4, 2)
    assert (focus["do_sample"], focus["temperature"], focus["top_k"]) == (True, 0.5, 5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": -1},
        {"mode": "magic"},
        {"noise": "pink"},
        {"temperature": -0.1},
        {"top_p": 2.0},
        {"max_tokens": 0},
    ],
)
def test_bad_options_are_refused_early(qwen_path: str, llm: ChatFocus, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionError):  # the same error type as FocusMultiModalLLM's constructor
        ChatFocus(model=qwen_path, **kwargs)
    with pytest.raises(InvalidOptionError):
        llm.invoke("hi", **kwargs)


def test_unknown_arguments_are_refused(qwen_path: str, llm: ChatFocus) -> None:
    with pytest.raises(InvalidOptionError, match="alpah"):
        ChatFocus(model=qwen_path, alpah=0.2)
    with pytest.raises(InvalidOptionError, match="alpah"):
        llm.invoke("hi", alpah=0.2)
    with pytest.raises(InvalidOptionError, match="model=<hub id or folder> or decoder="):
        ChatFocus()


def test_stop_sequences(llm: ChatFocus, scripted: Any) -> None:
    scripted("The red one. STOP here is ignored")
    message = llm.invoke("Which?", stop=["STOP"], max_tokens=60)
    assert message.content == "The red one. "
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["stop_sequence"] == "STOP"
    llm_with_stop = llm.model_copy(update={"stop": ["one"]})
    assert llm_with_stop.invoke("Which?", max_tokens=60).content == "The red "


def test_decoder_is_shared_and_injectable(qwen_path: str, llm: ChatFocus) -> None:
    other = ChatFocus(model=qwen_path, alpha=0.3)
    assert other.focus_decoder is llm.focus_decoder  # one checkpoint loaded once
    from_decoder = ChatFocus(decoder=llm.focus_decoder, max_tokens=2)
    assert from_decoder.model == qwen_path
    assert from_decoder.invoke("hi").response_metadata["model_name"] == qwen_path
    with pytest.raises(ValueError, match="must be a FocusDecoder"):
        ChatFocus(decoder="not a decoder")


def test_token_counting_uses_the_models_tokenizer(llm: ChatFocus) -> None:
    # The tiny checkpoint's tokenizer is byte-level with no merges: one token per UTF-8 byte.
    assert llm.get_num_tokens("héllo") == len("héllo".encode())
    text_only = llm.get_num_tokens_from_messages([HumanMessage("Which is cheaper?")])
    with_images = llm.get_num_tokens_from_messages(_two_images())
    assert with_images > text_only
    assert llm.invoke(_two_images()).usage_metadata["input_tokens"] == with_images


def test_timeout_raises(llm: ChatFocus) -> None:
    with pytest.raises(RequestTimeoutError):
        llm.invoke(_two_images(), timeout=1e-9, max_tokens=50)
    assert llm.invoke("hi", max_tokens=2).usage_metadata["output_tokens"] == 2  # decoder free again


def test_batch_matches_sequential(llm: ChatFocus) -> None:
    inputs = [_two_images("Which is cheaper?"), "Hello", _two_images("Which is red?")]
    sequential = [llm.invoke(i).content for i in inputs]
    batched = [m.content for m in llm.batch(inputs, config={"max_concurrency": 3})]
    assert batched == sequential


def test_concurrent_threads_on_one_instance(llm: ChatFocus) -> None:
    expected = llm.invoke(_two_images()).content
    results: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append("".join(c.content for c in llm.stream(_two_images())))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and results == [expected] * 4


async def test_async_forms_match_sync(llm: ChatFocus) -> None:
    expected = llm.invoke(_two_images())
    message = await llm.ainvoke(_two_images())
    assert isinstance(message, AIMessage) and message.content == expected.content
    chunks = [c async for c in llm.astream(_two_images())]
    assert "".join(c.content for c in chunks) == expected.content and chunks[-1].chunk_position == "last"
    assert chunks[-1].usage_metadata == expected.usage_metadata
    results = await llm.abatch([_two_images(), "Hello"])
    assert results[0].content == expected.content and isinstance(results[1], AIMessage)


async def test_async_does_not_block_the_event_loop(llm: ChatFocus) -> None:
    decoder = llm.focus_decoder
    ticks_while_decoding = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks_while_decoding
        while not stop.is_set():
            ticks_while_decoding += decoder.busy
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.gather(*(llm.ainvoke(_two_images(), max_tokens=30) for _ in range(3)))
    stop.set()
    await task
    # A decode that ran on the loop's thread would hold the loop for its whole duration: the ticker could
    # never run while the decoder is busy. Counting those ticks does not depend on how loaded the machine is.
    assert ticks_while_decoding >= 3


async def test_cancelled_astream_frees_the_decoder(llm: ChatFocus) -> None:
    stream = llm.astream(_two_images(), max_tokens=200)
    first = await stream.__anext__()
    assert isinstance(first, AIMessageChunk)
    await stream.aclose()  # the consumer walks away mid-answer
    # The worker stops at its next token and releases the decoder: a new call completes promptly.
    message = await asyncio.wait_for(llm.ainvoke("hi", max_tokens=2), timeout=60)
    assert message.usage_metadata["output_tokens"] == 2


def test_model_override_per_call(llm: ChatFocus, tiny_checkpoint: Any) -> None:
    other = str(tiny_checkpoint("qwen2_vl"))
    message = llm.invoke("Hello", model=other)
    assert message.response_metadata["model_name"] == other
    assert llm._decoder_for(other) is llm._decoder_for(other)  # loaded once, kept for later calls
    assert llm._decoder_for(other) is not llm.focus_decoder
    assert llm._get_ls_params(model=other)["ls_model_name"] == other


def test_streaming_flag_fires_token_callbacks_once_each(qwen_path: str) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    class Collect(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            self.tokens.append(token)

    handler = Collect()
    llm = ChatFocus(model=qwen_path, max_tokens=6, streaming=True)
    message = llm.invoke(_two_images(), config={"callbacks": [handler]})
    assert "".join(handler.tokens) == message.content and len(handler.tokens) >= 2
    assert message.usage_metadata["output_tokens"] == 6


def test_profile_describes_capabilities_without_loading() -> None:
    llm = ChatFocus(model="some/unloaded-model", max_tokens=12, allow_remote_images=True)
    assert llm._decoder is None  # building the profile loaded nothing
    profile = llm.profile
    assert profile["image_inputs"] and profile["image_tool_message"] and profile["tool_choice"]
    assert "tool_calling" not in profile  # whether its template renders tools is unknown without its files
    assert profile["image_url_inputs"] is True and profile["max_output_tokens"] == 12
    assert not profile["audio_inputs"] and not profile["pdf_inputs"]


async def test_async_errors_surface_with_their_types(llm: ChatFocus) -> None:
    from focus_integrations.errors import ContextLengthError, RemoteImageError

    with pytest.raises(RemoteImageError):  # raised while preparing (image loading, off the loop)
        await llm.ainvoke(
            [HumanMessage(content=[{"type": "image", "url": "https://example.com/x.png"}, "?"])]
        )
    too_long = "word " * (llm.focus_decoder.context_length + 10)
    with pytest.raises(ContextLengthError):  # raised inside the engine, in the worker thread
        await llm.ainvoke(too_long)
    with pytest.raises(ContextLengthError):
        async for _ in llm.astream(too_long):
            pass
    assert (await llm.ainvoke("hi", max_tokens=2)).usage_metadata["output_tokens"] == 2  # decoder free


def test_device_and_dtype_reach_the_loader(qwen_path: str) -> None:
    import torch

    llm = ChatFocus(model=qwen_path, dtype=torch.bfloat16, device="cpu", max_tokens=2)
    assert next(llm.focus_decoder.model.parameters()).dtype == torch.bfloat16
    assert llm.focus_decoder is not ChatFocus(model=qwen_path, max_tokens=2).focus_decoder  # other placement
    assert llm.invoke(_two_images()).usage_metadata["output_tokens"] == 2
