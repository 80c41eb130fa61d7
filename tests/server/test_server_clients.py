"""LangChain ``ChatOpenAI`` and LlamaIndex ``OpenAILike``, unchanged, against the real ``focus serve`` process.

Answers are compared with the same request decoded directly by ``FocusDecoder`` (greedy, seeded noise).
"""

from __future__ import annotations

import base64
import io
import json
from typing import Literal

import pytest
from PIL import Image
from pydantic import BaseModel, Field

from tests.server.conftest import MODEL_ID, QUESTION, data_uri, two_image_request


def _png(color: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _direct(reference_decoder, max_new_tokens: int, **options) -> str:
    return reference_decoder.generate(**two_image_request(), max_new_tokens=max_new_tokens, **options).text


# ---------------------------------------------------------------------------------------------- LangChain


def _chat_openai(server: str, **overrides):
    """LangChain's ChatOpenAI pointed at the server: greedy-comparable (seed 0), no retries."""
    from langchain_openai import ChatOpenAI

    settings = {"max_tokens": 8, "seed": 0, "max_retries": 0, "timeout": 120} | overrides
    return ChatOpenAI(model=MODEL_ID, base_url=f"{server}/v1", api_key="unused", **settings)


@pytest.fixture(scope="module")
def chat_openai(server: str):
    return _chat_openai(server)


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


class Verdict(BaseModel):
    """Which product is cheaper."""

    cheaper: Literal["first", "second"]
    reason: str = Field(max_length=10)


class GetPrice(BaseModel):
    """Price of one of the two products."""

    product: Literal["first", "second"]
    currency: str = Field(max_length=3)


@pytest.fixture(scope="module")
def roomy_chat(server: str, chat_openai):
    """``ChatOpenAI`` with room for a structured answer (a JSON object is ~1 token per character here)."""
    return chat_openai.model_copy(update={"max_tokens": 120})


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output(roomy_chat, method: str) -> None:
    verdict = roomy_chat.with_structured_output(Verdict, method=method).invoke([_human()])
    assert isinstance(verdict, Verdict)
    raw = roomy_chat.with_structured_output(Verdict, method=method, include_raw=True).invoke([_human()])
    assert raw["parsed"] == verdict and raw["parsing_error"] is None


def test_langchain_structured_output_cut_off_raises(chat_openai) -> None:
    import openai

    with pytest.raises(openai.LengthFinishReasonError):
        chat_openai.with_structured_output(Verdict).invoke([_human()])  # 8 tokens: cut off
    # Cut inside the arguments (the call's name and key take ~48 tokens): finish_reason "length" and
    # arguments that never parse. LangChain's function_calling parser then gives None (as it does with
    # OpenAI's own cut-off calls), never a half-filled object; the raw message says why.
    short = chat_openai.model_copy(update={"max_tokens": 55})
    raw = short.with_structured_output(Verdict, method="function_calling", include_raw=True).invoke(
        [_human()]
    )
    assert raw["parsed"] is None
    assert raw["raw"].response_metadata["finish_reason"] == "length"
    assert raw["raw"].tool_calls == []
    (invalid,) = raw["raw"].invalid_tool_calls
    assert invalid["name"] == "Verdict" and "not valid JSON" in invalid["error"]


@pytest.mark.parametrize("tool_choice", ["GetPrice", "any"])
def test_langchain_bind_tools_forced_call_has_valid_arguments(roomy_chat, tool_choice: str) -> None:
    def lookup(colour: Literal["red", "blue"]) -> str:
        """Look a product up by colour."""
        return colour

    # strict: closed argument objects (else a random model may add keys until max_tokens runs out)
    bound = roomy_chat.bind_tools([GetPrice, lookup], tool_choice=tool_choice, strict=True)
    message = bound.invoke([_human()])
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert message.invalid_tool_calls == []
    (call,) = message.tool_calls
    if tool_choice == "GetPrice":
        assert call["name"] == "GetPrice"
    if call["name"] == "GetPrice":
        GetPrice(**call["args"])
    else:
        assert call["args"]["colour"] in ("red", "blue")


def test_langchain_agent_with_an_image_returning_tool(server: str) -> None:
    """create_agent: the model calls the tool, the tool returns a photo, the model answers about both."""
    import httpx
    from langchain.agents import create_agent
    from langchain.agents.middleware import AgentMiddleware
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    exchanges: list[tuple[dict, dict]] = []

    def record(response: httpx.Response) -> None:
        response.read()
        exchanges.append((json.loads(response.request.content), response.json()))

    photos: list[str] = []

    @tool
    def product_photo(product: Literal["kettle", "toaster"]) -> list[dict]:
        """A photo of one product from the catalog."""
        photos.append(product)
        return [
            {
                "type": "image",
                "base64": base64.b64encode(_png("blue", (24, 32))).decode(),
                "mime_type": "image/png",
            }
        ]

    class FirstCallUsesTheTool(AgentMiddleware):
        """Step one must call the photo tool; once a photo is back, answer in words."""

        def wrap_model_call(self, request, handler):
            has_result = any(isinstance(m, ToolMessage) for m in request.messages)
            return handler(request.override(tool_choice="none" if has_result else "product_photo"))

    model = _chat_openai(
        server,
        max_tokens=80,
        timeout=180,
        http_client=httpx.Client(event_hooks={"response": [record]}, timeout=180),
    )
    agent = create_agent(model, tools=[product_photo], middleware=[FirstCallUsesTheTool()])
    question = HumanMessage(
        content=[
            {"type": "image_url", "image_url": {"url": data_uri("red", (32, 24))}},
            {"type": "text", "text": "Here is my kettle. Is the toaster in your catalog the same colour?"},
        ]
    )
    result = agent.invoke({"messages": [question]})
    kinds = [type(m).__name__ for m in result["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    call = result["messages"][1].tool_calls[0]
    assert call["name"] == "product_photo" and call["args"]["product"] in ("kettle", "toaster")
    assert photos == [call["args"]["product"]]
    final = result["messages"][-1]
    assert isinstance(final, AIMessage) and not final.tool_calls and final.content
    # The photo went back to the server inside the tool turn, and the answer was FOCUS over both images.
    ((request, response),) = exchanges[-1:]
    tool_turn = next(m for m in request["messages"] if m["role"] == "tool")
    assert any(part["type"] == "image_url" for part in tool_turn["content"])
    assert response["focus"]["n_images"] == 2 and response["focus"]["n_rows"] == 3
    assert response["choices"][0]["message"]["content"] == final.content


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
