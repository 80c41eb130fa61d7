"""LangChain ``ChatOpenAI`` and LlamaIndex ``OpenAILike``, unchanged, against the real ``focus serve`` process.

Answers are compared with the same request decoded directly by ``FocusDecoder`` (greedy, seeded noise).
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.server.conftest import MODEL_ID, data_uri

QUESTION = "Which product is cheaper?"


def _png(color: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _direct(reference_decoder, max_new_tokens: int, **options) -> str:
    images = [Image.new("RGB", (32, 24), "red"), Image.new("RGB", (24, 32), "blue")]
    return reference_decoder.generate(
        images=images, prompt=QUESTION, max_new_tokens=max_new_tokens, **options
    ).text


# ---------------------------------------------------------------------------------------------- LangChain


@pytest.fixture(scope="module")
def chat_openai(server: str):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=MODEL_ID,
        base_url=f"{server}/v1",
        api_key="unused",
        max_tokens=8,
        seed=0,
        max_retries=0,
        timeout=120,
    )


def _human():
    from langchain_core.messages import HumanMessage

    return HumanMessage(
        content=[
            {"type": "image_url", "image_url": {"url": data_uri("red", (32, 24))}},
            {
                "type": "image",
                "base64": base64.b64encode(_png("blue", (24, 32))).decode(),
                "mime_type": "image/png",
            },
            {"type": "text", "text": QUESTION},
        ]
    )


def test_langchain_invoke_with_images(chat_openai, reference_decoder) -> None:
    message = chat_openai.invoke([_human()])
    assert message.content == _direct(reference_decoder, 8, seed=0)
    assert message.usage_metadata["output_tokens"] == 8
    assert message.response_metadata["model_name"] == MODEL_ID
    vanilla = chat_openai.bind(extra_body={"mode": "vanilla"}).invoke([_human()])
    assert vanilla.content == _direct(reference_decoder, 8, seed=0, mode="vanilla")


def test_langchain_stream_with_usage(chat_openai, reference_decoder) -> None:
    chunks = list(chat_openai.stream([_human()], stream_usage=True))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.content == _direct(reference_decoder, 8, seed=0)
    assert merged.usage_metadata["output_tokens"] == 8
    assert merged.usage_metadata["total_tokens"] == merged.usage_metadata["input_tokens"] + 8


def test_langchain_bind_tools_forced_call(chat_openai) -> None:
    def get_price(product: str) -> float:
        """Price of a product."""
        return 1.0

    message = chat_openai.bind_tools([get_price], tool_choice="get_price").invoke([_human()])
    calls = [c["name"] for c in message.tool_calls] + [c["name"] for c in message.invalid_tool_calls]
    assert calls == ["get_price"]
    assert message.response_metadata["finish_reason"] == "tool_calls"


# ---------------------------------------------------------------------------------------------- LlamaIndex


def test_llama_index_openai_like_chat_with_images(server: str, reference_decoder) -> None:
    from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model=MODEL_ID,
        api_base=f"{server}/v1",
        api_key="unused",
        is_chat_model=True,
        temperature=0,  # LlamaIndex's default is 0.1, which samples
        max_tokens=8,
        additional_kwargs={"seed": 0},
        max_retries=0,
    )
    message = ChatMessage(
        role="user",
        blocks=[
            ImageBlock(image=_png("red", (32, 24)), image_mimetype="image/png"),
            ImageBlock(image=_png("blue", (24, 32)), image_mimetype="image/png"),
            TextBlock(text=QUESTION),
        ],
    )
    expected = _direct(reference_decoder, 8, seed=0)
    assert llm.chat([message]).message.content == expected
    assert "".join(r.delta or "" for r in llm.stream_chat([message])) == expected


def test_llama_index_openai_like_default_uses_completions(server: str, reference_decoder) -> None:
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model=MODEL_ID, api_base=f"{server}/v1", api_key="unused", temperature=0, max_tokens=5, max_retries=0
    )
    assert not llm.metadata.is_chat_model
    expected = reference_decoder.generate(
        messages=[{"role": "user", "content": "Name a colour."}], require_images=False, max_new_tokens=5
    ).text
    assert llm.complete("Name a colour.").text == expected
    assert "".join(r.delta or "" for r in llm.stream_complete("Name a colour.")) == expected
