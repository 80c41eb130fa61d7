"""FocusMultiModalLLM on a real (tiny, random) Qwen2.5-VL checkpoint through the real engine.

Random weights give junk text, so the tests compare against the engine itself: the same images and question
decoded directly with ``FocusDecoder.generate`` (greedy, seeded noise) must give the same text and usage as the
LlamaIndex path, whatever form the images arrive in.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import http.server
import io
import threading
import time
from pathlib import Path

import pytest
from li_helpers import data_uri, png_bytes, same_pixels
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
    CachePoint,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms import LLM, ChatMessage, ChatResponse, CompletionResponse, ImageBlock, TextBlock
from llama_index.core.schema import ImageDocument, ImageNode, NodeWithScore

from focus_integrations.errors import (
    ImageLoadError,
    InvalidOptionError,
    ModelNotFoundError,
    NoImageError,
    RemoteImageError,
)
from focus_integrations.llama_index import FocusMultiModalLLM, chat_messages_to_engine

QUESTION = "Which picture shows the red circle?"
MAX_NEW = 6


@pytest.fixture
def llm(decoder) -> FocusMultiModalLLM:
    return FocusMultiModalLLM(decoder=decoder, max_new_tokens=MAX_NEW, seed=0)


@pytest.fixture
def reference(decoder, images):
    """What the engine answers for [image 0, image 1, QUESTION] with the same settings."""
    content = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": QUESTION}]
    return decoder.generate(messages=[{"role": "user", "content": content}], max_new_tokens=MAX_NEW, seed=0)


def _user(*blocks) -> list[ChatMessage]:
    return [ChatMessage(role="user", blocks=[*blocks, TextBlock(text=QUESTION)])]


# Every way an ImageBlock can carry an image.
IMAGE_SOURCES = {
    "raw bytes": lambda image, path: ImageBlock(image=png_bytes(image)),
    "file object": lambda image, path: ImageBlock(image=io.BytesIO(png_bytes(image))),
    "base64 bytes": lambda image, path: ImageBlock(image=base64.b64encode(png_bytes(image))),
    "path": lambda image, path: ImageBlock(path=path),
    "data URI": lambda image, path: ImageBlock(url=data_uri(image)),
    "file URL": lambda image, path: ImageBlock(url=path.as_uri()),
}


def test_metadata_describes_a_chat_model_with_the_checkpoint_context(llm, decoder):
    meta = llm.metadata
    assert isinstance(llm, LLM)
    assert meta.is_chat_model is True
    assert meta.is_function_calling_model is True  # the Qwen chat template renders tools
    assert meta.context_window == decoder.model.config.text_config.max_position_embeddings
    assert meta.num_output == MAX_NEW
    assert meta.model_name == decoder.model_name
    assert FocusMultiModalLLM(decoder=decoder, context_window=4096).metadata.context_window == 4096


@pytest.mark.parametrize("source", list(IMAGE_SOURCES))
def test_chat_decodes_image_blocks_from_every_source_like_the_engine(
    llm, images, image_files, reference, source
):
    blocks = [IMAGE_SOURCES[source](image, path) for image, path in zip(images, image_files)]
    response = llm.chat(_user(*blocks))
    assert isinstance(response, ChatResponse)
    assert response.message.role == "assistant"
    assert response.message.content == reference.text
    assert response.raw["settings"]["n_images"] == 2
    assert response.raw["settings"]["n_rows"] == 3  # N + 1 rows: FOCUS, not plain decoding
    assert response.raw["usage"]["input_tokens"] == reference.usage.input_tokens
    assert response.raw["usage"]["output_tokens"] == reference.usage.output_tokens
    assert response.additional_kwargs["completion_tokens"] == reference.usage.output_tokens
    assert response.raw["finish_reason"] == reference.finish_reason


def test_conversion_keeps_images_and_text_in_prompt_order(images, image_files):
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(
            role="user",
            blocks=[
                TextBlock(text="first:"),
                ImageBlock(path=image_files[1]),
                TextBlock(text="then:"),
                ImageBlock(url=data_uri(images[0])),
                CachePoint(cache_control=CacheControl(type="ephemeral")),
            ],
        ),
        ChatMessage(role="assistant", blocks=[ThinkingBlock(content="hmm"), TextBlock(text="ok")]),
    ]
    converted = chat_messages_to_engine(messages)
    assert converted[0] == {"role": "system", "content": "Be brief."}
    kinds = [item["type"] for item in converted[1]["content"]]
    assert kinds == ["text", "image", "text", "image"]
    assert same_pixels(converted[1]["content"][1]["image"], images[1])
    assert same_pixels(converted[1]["content"][3]["image"], images[0])
    assert converted[2] == {"role": "assistant", "content": "ok"}


def test_conversion_maps_tool_calls_and_tool_results():
    messages = [
        ChatMessage(
            role="assistant",
            blocks=[ToolCallBlock(tool_call_id="c1", tool_name="zoom", tool_kwargs={"x": 1})],
        ),
        ChatMessage(role="tool", content="done", additional_kwargs={"tool_call_id": "c1", "name": "zoom"}),
    ]
    converted = chat_messages_to_engine(messages)
    assert converted[0]["tool_calls"] == [
        {"type": "function", "id": "c1", "function": {"name": "zoom", "arguments": {"x": 1}}}
    ]
    assert converted[1] == {"role": "tool", "content": "done", "tool_call_id": "c1", "name": "zoom"}


def test_consecutive_user_turns_merge_into_one(images):
    # Real Gemma / Llama templates raise on two user turns in a row; one merged turn means the same.
    messages = [
        ChatMessage(role="user", blocks=[ImageBlock(url=data_uri(images[0])), TextBlock(text="first")]),
        ChatMessage(role="user", blocks=[TextBlock(text="second"), ImageBlock(url=data_uri(images[1]))]),
        ChatMessage(role="assistant", content="noted"),
        ChatMessage(role="user", content="third"),
        ChatMessage(role="user", content="fourth"),
    ]
    converted = chat_messages_to_engine(messages)
    assert [m["role"] for m in converted] == ["user", "assistant", "user"]
    assert [item["type"] for item in converted[0]["content"]] == ["image", "text", "image"]
    assert converted[0]["content"][1]["text"] == "first\n\nsecond"
    assert same_pixels(converted[0]["content"][2]["image"], images[1])
    assert converted[2]["content"] == "third\n\nfourth"


def test_stream_chat_yields_cumulative_text_and_deltas(llm, image_files, reference):
    chunks = list(llm.stream_chat(_user(*(ImageBlock(path=p) for p in image_files))))
    assert len(chunks) >= 2
    text = ""
    for chunk in chunks:
        text += chunk.delta
        assert chunk.message.content == text
    assert text == reference.text
    # Only the closing chunk carries usage; it adds no text.
    assert chunks[-1].delta == ""
    assert chunks[-1].raw["usage"]["output_tokens"] == reference.usage.output_tokens
    assert all(chunk.raw is None for chunk in chunks[:-1])


def test_complete_accepts_image_documents_of_every_kind(llm, images, image_files, reference):
    encoded = base64.b64encode(png_bytes(images[0])).decode("ascii")
    documents = [
        ImageNode(image=encoded),
        NodeWithScore(node=ImageNode(image_path=str(image_files[1])), score=1.0),
    ]
    response = llm.complete(QUESTION, image_documents=documents)
    assert isinstance(response, CompletionResponse)
    assert response.text == reference.text
    assert response.raw["settings"]["n_images"] == 2
    # The MultiModalLLM convention passes the list positionally; ImageDocument and ImageBlock work too.
    legacy = llm.complete(
        QUESTION, [ImageDocument(image_path=str(image_files[0])), ImageBlock(path=image_files[1])]
    )
    assert legacy.text == reference.text


def test_stream_complete_yields_cumulative_text_and_deltas(llm, image_files, reference):
    chunks = list(llm.stream_complete(QUESTION, image_documents=[ImageBlock(path=p) for p in image_files]))
    text = ""
    for chunk in chunks:
        text += chunk.delta
        assert chunk.text == text
    assert text == reference.text
    assert chunks[-1].raw["settings"]["n_images"] == 2


async def test_async_variants_match_the_sync_ones(llm, image_files, reference):
    messages = _user(*(ImageBlock(path=p) for p in image_files))
    documents = [ImageBlock(path=p) for p in image_files]

    chat = await llm.achat(messages)
    assert chat.message.content == reference.text
    assert chat.raw["usage"]["output_tokens"] == reference.usage.output_tokens

    text = ""
    async for chunk in await llm.astream_chat(messages):
        text += chunk.delta
        assert chunk.message.content == text
    assert text == reference.text
    assert chunk.raw["settings"]["n_images"] == 2

    completion = await llm.acomplete(QUESTION, image_documents=documents)
    assert completion.text == reference.text

    text = ""
    async for chunk in await llm.astream_complete(QUESTION, image_documents=documents):
        text += chunk.delta
        assert chunk.text == text
    assert text == reference.text


async def test_async_decoding_does_not_block_the_event_loop(decoder, image_files):
    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=48, seed=0)
    messages = _user(*(ImageBlock(path=p) for p in image_files))
    llm.chat(messages)  # warm up, so the timed call is the decode alone
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = time.perf_counter()
    response = await llm.achat(messages)
    end = time.perf_counter()
    done.set()
    await task
    assert response.raw["usage"]["output_tokens"] > 0
    # A blocking achat would let the ticker run at most once while the model decodes.
    assert sum(start < t < end for t in ticks) >= 5


def test_stopping_a_stream_early_releases_the_decoder(llm, image_files):
    messages = _user(*(ImageBlock(path=p) for p in image_files))
    stream = llm.stream_chat(messages, max_new_tokens=32)
    next(stream)
    stream.close()
    finished = threading.Event()
    thread = threading.Thread(target=lambda: (llm.chat(messages), finished.set()), daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert finished.is_set(), "the decoder lock was still held by the abandoned stream"


async def test_abandoning_an_async_stream_releases_the_decoder(llm, image_files):
    messages = _user(*(ImageBlock(path=p) for p in image_files))
    stream = await llm.astream_chat(messages, max_new_tokens=32)
    await stream.__anext__()
    await stream.aclose()
    response = await asyncio.wait_for(llm.achat(messages), timeout=120)
    assert response.raw["settings"]["n_images"] == 2


async def test_cancelling_achat_stops_the_decode(decoder, image_files):
    # A decode of thousands of tokens would hold the decoder's lock for minutes; cancelling must free it at
    # the next token. (The lock is the engine's documented serialisation of requests.)
    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=4000, seed=0)
    task = asyncio.create_task(llm.achat(_user(*(ImageBlock(path=p) for p in image_files))))
    deadline = time.monotonic() + 60
    while not decoder.busy:
        assert time.monotonic() < deadline and not task.done(), "the decode never started"
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 10
    while decoder.busy:
        assert time.monotonic() < deadline, "the cancelled decode kept running"
        await asyncio.sleep(0.01)


def test_per_call_options_override_fields_and_fields_override_decoder_defaults(decoder, image_files):
    from focus_integrations import FocusDecoder

    messages = _user(*(ImageBlock(path=p) for p in image_files))
    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=2, alpha=0.3)
    assert llm.chat(messages).raw["settings"]["alpha"] == 0.3
    vanilla = llm.chat(messages, mode="vanilla", max_new_tokens=3).raw["settings"]
    assert vanilla["mode"] == "vanilla" and vanilla["n_rows"] == 1 and vanilla["max_new_tokens"] <= 3
    # Fields left unset keep the decoder's own defaults.
    tuned = FocusDecoder(decoder.model, decoder.processor, alpha=0.7, max_new_tokens=2)
    assert FocusMultiModalLLM(decoder=tuned).chat(messages).raw["settings"]["alpha"] == 0.7
    assert FocusMultiModalLLM(decoder=tuned).metadata.num_output == 2


def test_remote_images_are_refused_unless_allowed(decoder, images, tmp_path):
    (tmp_path / "remote.png").write_bytes(png_bytes(images[0]))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.png"
        messages = _user(ImageBlock(url=url))
        with pytest.raises(RemoteImageError):
            FocusMultiModalLLM(decoder=decoder, max_new_tokens=2).chat(messages)
        allowed = FocusMultiModalLLM(decoder=decoder, max_new_tokens=2, allow_remote_images=True)
        assert allowed.chat(messages).raw["settings"]["n_images"] == 1
        converted = chat_messages_to_engine(messages, allow_remote_images=True)
        assert same_pixels(converted[0]["content"][0]["image"], images[0])
    finally:
        server.shutdown()
        server.server_close()


def test_text_only_requests_decode_plainly_unless_images_are_required(llm, decoder):
    messages = [ChatMessage(role="user", content="no picture here")]
    plain = llm.chat(messages)
    assert plain.raw["settings"]["n_images"] == 0 and plain.raw["settings"]["n_rows"] == 1
    reference = decoder.generate(
        messages=[{"role": "user", "content": "no picture here"}],
        require_images=False,
        max_new_tokens=MAX_NEW,
        seed=0,
    )
    assert plain.message.content == reference.text
    assert llm.complete("no picture here").text == reference.text
    strict = FocusMultiModalLLM(decoder=decoder, max_new_tokens=MAX_NEW, require_images=True)
    with pytest.raises(NoImageError):
        strict.chat(messages)
    with pytest.raises(NoImageError):
        list(strict.stream_complete("no picture here"))


def test_bad_input_raises_documented_errors(llm, decoder, image_files, tmp_path):
    with pytest.raises(ImageLoadError):
        llm.chat(_user(ImageBlock(path=image_files[0]), ImageBlock(image=b"definitely not an image")))
    with pytest.raises(ImageLoadError):
        llm.complete(QUESTION, image_documents=[ImageNode(text="a node without an image")])
    with pytest.raises(InvalidOptionError, match="AudioBlock"):
        llm.chat(_user(ImageBlock(path=image_files[0]), AudioBlock(audio=b"RIFF....", format="wav")))
    with pytest.raises(InvalidOptionError, match="alpha"):
        FocusMultiModalLLM(decoder=decoder, alpha=-1.0)
    with pytest.raises(InvalidOptionError, match="temprature"):
        llm.chat(_user(ImageBlock(path=image_files[0])), temprature=0.5)
    with pytest.raises(InvalidOptionError, match="temprature"):
        llm.stream_chat(_user(ImageBlock(path=image_files[0])), temprature=0.5)
    with pytest.raises(InvalidOptionError, match="max_new_tokens"):
        FocusMultiModalLLM(decoder=decoder, max_new_tokens="many")
    with pytest.raises(InvalidOptionError, match="exactly one"):
        FocusMultiModalLLM()
    with pytest.raises(InvalidOptionError, match="device"):
        FocusMultiModalLLM(decoder=decoder, device="cpu")
    with pytest.raises(ModelNotFoundError):
        FocusMultiModalLLM(tmp_path / "no-such-model")


def test_one_token_stream_ends_with_a_usage_chunk(llm, image_files):
    chunks = list(llm.stream_chat(_user(*(ImageBlock(path=p) for p in image_files)), max_new_tokens=1))
    assert chunks[-1].raw["usage"]["output_tokens"] == 1
    assert "".join(chunk.delta for chunk in chunks) == chunks[-1].message.content


def test_llm_is_a_drop_in_for_llamaindex_prompt_helpers(llm, image_files):
    # LLM.predict / stream go through chat() for chat models; images ride along via the messages' blocks.
    from llama_index.core.prompts import ChatPromptTemplate

    template = ChatPromptTemplate(
        message_templates=[
            ChatMessage(
                role="user", blocks=[ImageBlock(path=image_files[0]), TextBlock(text="Describe {thing}.")]
            )
        ]
    )
    answer = llm.predict(template, thing="the shape")
    by_hand = llm.chat(
        [
            ChatMessage(
                role="user", blocks=[ImageBlock(path=image_files[0]), TextBlock(text="Describe the shape.")]
            )
        ]
    )
    assert answer == by_hand.message.content and by_hand.raw["settings"]["n_images"] == 1
    streamed = "".join(llm.stream(template, thing="the shape"))
    assert streamed == answer


def test_path_source_and_inline_source_give_identical_images(images, image_files: list[Path]):
    from focus_integrations.llama_index.conversion import image_block_to_pil

    for image, path in zip(images, image_files):
        decoded = [image_block_to_pil(make(image, path)) for make in IMAGE_SOURCES.values()]
        assert all(same_pixels(d, image) for d in decoded)


def test_serialised_llm_rebuilds_with_its_settings(tiny_checkpoint, image_files):
    original = FocusMultiModalLLM(tiny_checkpoint("qwen2_5_vl"), alpha=0.25, max_new_tokens=3, seed=1)
    rebuilt = FocusMultiModalLLM.from_dict(original.to_dict())
    # Rebuilt from its settings, it names the same checkpoint and loading options: it shares the loaded decoder.
    assert rebuilt.model == original.model and rebuilt.decoder is original.decoder
    messages = _user(*(ImageBlock(path=p) for p in image_files))
    first, second = original.chat(messages), rebuilt.chat(messages)
    assert second.raw["settings"]["alpha"] == 0.25
    assert second.message.content == first.message.content


def test_token_counting_handler_reads_the_models_own_counts(decoder, image_files):
    # LlamaIndex's TokenCountingHandler prefers usage reported by the LLM over its own tiktoken estimate
    # (which would count each image as 2125 tokens).
    from llama_index.core.callbacks import CallbackManager, TokenCountingHandler

    counter = TokenCountingHandler()
    llm = FocusMultiModalLLM(
        decoder=decoder, max_new_tokens=4, seed=0, callback_manager=CallbackManager([counter])
    )
    messages = _user(*(ImageBlock(path=p) for p in image_files))
    usage = llm.chat(messages).raw["usage"]
    streamed = list(llm.stream_chat(messages))[-1].raw["usage"]
    assert [(e.prompt_token_count, e.completion_token_count) for e in counter.llm_token_counts] == [
        (usage["input_tokens"], usage["output_tokens"]),
        (streamed["input_tokens"], streamed["output_tokens"]),
    ]


def test_every_engine_option_is_a_field_or_a_generate_kwarg(decoder):
    import dataclasses

    from focus_integrations.llama_index.llms import ENGINE_OPTION_FIELDS
    from focus_integrations.options import DecodingOptions

    fields = {f.name for f in dataclasses.fields(DecodingOptions)}
    assert set(ENGINE_OPTION_FIELDS) <= fields and set(ENGINE_OPTION_FIELDS) <= set(
        FocusMultiModalLLM.model_fields
    )
    llm = FocusMultiModalLLM(
        decoder=decoder, generate_kwargs={"min_new_tokens": 2, "no_repeat_ngram_size": 3}
    )
    options = llm.effective_options(max_tokens=5)
    assert (options.min_new_tokens, options.no_repeat_ngram_size, options.max_new_tokens) == (2, 3, 5)


async def test_concurrent_async_requests_each_get_their_own_answer(llm, images, image_files):
    # The decoder serialises requests; concurrent calls must neither mix their images nor their text.
    one = _user(ImageBlock(path=image_files[0]))
    two = _user(ImageBlock(path=image_files[1]), ImageBlock(url=data_uri(images[0])))
    expected = [llm.chat(one), llm.chat(two)]
    results = await asyncio.gather(llm.achat(one), llm.achat(two), llm.achat(one))
    assert [r.raw["settings"]["n_images"] for r in results] == [1, 2, 1]
    assert [r.message.content for r in results] == [e.message.content for e in [*expected, expected[0]]]


def test_image_documents_of_every_shape_load_the_same_pixels(images, image_files):
    from llama_index.core.schema import Document, MediaResource

    from focus_integrations.llama_index.conversion import image_document_to_pil

    raw = png_bytes(images[0])
    documents = [
        ImageNode(image=base64.b64encode(raw).decode("ascii")),
        ImageNode(image_path=str(image_files[0])),
        ImageNode(image_url=data_uri(images[0])),
        ImageDocument(image_path=str(image_files[0])),
        Document(image_resource=MediaResource(data=raw)),
        Document(image_resource=MediaResource(data=base64.b64encode(raw))),
        Document(image_resource=MediaResource(path=image_files[0])),
        NodeWithScore(node=ImageNode(image_path=str(image_files[0])), score=0.5),
        ImageBlock(path=image_files[0]),
        images[0],
    ]
    assert all(same_pixels(image_document_to_pil(doc), images[0]) for doc in documents)
    with pytest.raises(RemoteImageError):
        image_document_to_pil(ImageNode(image_url="https://example.com/cat.png"))
