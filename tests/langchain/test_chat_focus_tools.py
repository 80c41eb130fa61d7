"""Tools and structured output through ChatFocus: rendering, parsing, streaming, tool_choice.

Model output is scripted (see conftest.py): only the token choice is replaced; the chat template, rows,
prefill, decode steps, detokeniser and ChatFocus's parsing are real.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from focus_lc_helpers import png_b64
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from focus_integrations.errors import ConstraintError, IncompleteOutputError, InvalidOptionError
from focus_integrations.langchain import ChatFocus
from focus_integrations.logits import TokenChooser


@tool
def lookup_price(sku: str) -> float:
    """Price in EUR of the product with this SKU."""
    return {"A-1": 40.0, "B-2": 55.0}.get(sku, 0.0)


@tool
def list_products() -> list[str]:
    """All SKUs in the catalog."""
    return ["A-1", "B-2"]


class Verdict(BaseModel):
    """Which product is cheaper."""

    cheaper: str = Field(description="SKU of the cheaper product")
    saving: float


class VerdictDict(TypedDict):
    """Which product is cheaper."""

    cheaper: str
    saving: float


CALL_A1 = '<tool_call>\n{"name": "lookup_price", "arguments": {"sku": "A-1"}}\n</tool_call>'


@pytest.fixture
def tool_llm(qwen_path: str) -> ChatFocus:
    return ChatFocus(model=qwen_path, max_tokens=200)


def test_tools_are_rendered_by_the_chat_template_and_calls_parsed(tool_llm: ChatFocus, scripted: Any) -> None:
    log = scripted("Let me check.\n" + CALL_A1)
    message = tool_llm.bind_tools([lookup_price, list_products]).invoke("How much is A-1?")
    prompt = log.prompts[-1]
    assert "<tools>" in prompt and '"name": "lookup_price"' in prompt and '"name": "list_products"' in prompt
    assert message.content == "Let me check."
    [call] = message.tool_calls
    assert call["name"] == "lookup_price" and call["args"] == {"sku": "A-1"}
    assert call["id"].startswith("call_") and call["type"] == "tool_call"
    assert message.invalid_tool_calls == []
    assert message.response_metadata["finish_reason"] == "stop"


def test_no_tools_bound_means_markup_is_plain_text(tool_llm: ChatFocus, scripted: Any) -> None:
    scripted(CALL_A1)
    message = tool_llm.invoke("How much is A-1?")
    assert message.tool_calls == [] and message.content == CALL_A1


def test_malformed_tool_call_becomes_invalid_tool_call(tool_llm: ChatFocus, scripted: Any) -> None:
    scripted('<tool_call>\n{"name": "lookup_price", "arguments": {"sku": A-1}}\n</tool_call>')
    message = tool_llm.bind_tools([lookup_price]).invoke("How much is A-1?")
    assert message.tool_calls == []
    [bad] = message.invalid_tool_calls
    assert bad["name"] == "lookup_price" and "not valid JSON" in bad["error"] and bad["id"]
    assert message.content == ""


def test_generic_json_call_for_templates_without_tool_syntax(tool_llm: ChatFocus, scripted: Any) -> None:
    scripted('{"tool": "lookup_price", "parameters": {"sku": "B-2"}}')
    message = tool_llm.bind_tools([lookup_price]).invoke("How much is B-2?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("lookup_price", {"sku": "B-2"})]


def test_stream_with_tools_never_leaks_markup(tool_llm: ChatFocus, scripted: Any) -> None:
    scripted(
        "Checking both.\n"
        + CALL_A1
        + '\n<tool_call>\n{"name": "lookup_price", "arguments": {"sku": "B-2"}}</tool_call>'
    )
    chunks = list(tool_llm.bind_tools([lookup_price]).stream("Compare A-1 and B-2"))
    assert len(chunks) > 3  # really streamed, token by token
    for chunk in chunks:
        assert "tool_call" not in chunk.content and "sku" not in chunk.content
    assert chunks[-1].chunk_position == "last"
    assert [c for c in chunks if c.usage_metadata] == [chunks[-1]]  # usage exactly once, on the last chunk
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert isinstance(full, AIMessageChunk)
    assert full.content == "Checking both."
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [
        ("lookup_price", {"sku": "A-1"}),
        ("lookup_price", {"sku": "B-2"}),
    ]
    assert len({c["id"] for c in full.tool_calls}) == 2
    assert full.usage_metadata["output_tokens"] > 10


def test_stream_with_malformed_call_reports_it_invalid(tool_llm: ChatFocus, scripted: Any) -> None:
    scripted('<tool_call>\n{"name": "lookup_price", "arguments": {"sku": "A-1"}</tool_call>')
    full = None
    for chunk in tool_llm.bind_tools([lookup_price]).stream("price?"):
        full = chunk if full is None else full + chunk
    assert full.tool_calls == [] and len(full.invalid_tool_calls) == 1


async def test_astream_with_tools(tool_llm: ChatFocus, scripted: Any) -> None:
    scripted("One moment." + CALL_A1)
    full = None
    async for chunk in tool_llm.bind_tools([lookup_price]).astream("price of A-1?"):
        assert "<tool_call" not in chunk.content
        full = chunk if full is None else full + chunk
    assert full.content == "One moment."
    assert full.tool_calls[0]["args"] == {"sku": "A-1"}


def test_tool_history_with_images_in_tool_message(tool_llm: ChatFocus, scripted: Any) -> None:
    log = scripted("A-1 is cheaper.")
    history = [
        HumanMessage("Which is cheaper, A-1 or B-2?"),
        AIMessage("", tool_calls=[{"name": "lookup_price", "args": {"sku": "A-1"}, "id": "call_1"}]),
        ToolMessage(
            content=[
                {"type": "text", "text": "40.0 EUR, photo:"},
                {"type": "image", "base64": png_b64("red"), "mime_type": "image/png"},
            ],
            tool_call_id="call_1",
        ),
        AIMessage("", tool_calls=[{"name": "lookup_price", "args": {"sku": "B-2"}, "id": "call_2"}]),
        ToolMessage(
            content=[{"type": "image_url", "image_url": {"url": "data:image/png;base64," + png_b64("blue")}}],
            tool_call_id="call_2",
            status="error",
        ),
    ]
    message = tool_llm.bind_tools([lookup_price]).invoke(history)
    assert message.content == "A-1 is cheaper."
    prompt = log.prompts[-1]
    # Previous calls re-rendered in the model's own format, tool results as <tool_response> with images.
    assert prompt.count('"name": "lookup_price", "arguments": {"sku": "A-1"}') == 1
    assert prompt.count("<tool_response>") == 2 and prompt.count("<|vision_start|>") == 2
    assert "Error:" in prompt
    focus = message.response_metadata["focus"]
    assert focus["n_images"] == 2 and focus["n_rows"] == 3 and focus["rule"] == "focus"


@pytest.mark.parametrize(
    "choice, expected",
    [
        (None, None),
        ("auto", None),
        ("any", "any"),
        ("required", "any"),
        (True, "any"),
        ("lookup_price", "lookup_price"),
        ({"type": "function", "function": {"name": "lookup_price"}}, "lookup_price"),
        ("none", "none"),
    ],
)
def test_tool_choice_values(tool_llm: ChatFocus, choice: Any, expected: Any) -> None:
    bound = tool_llm.bind_tools([lookup_price, list_products], tool_choice=choice)
    assert bound.kwargs["tool_choice"] == expected
    assert [t["function"]["name"] for t in bound.kwargs["tools"]] == ["lookup_price", "list_products"]


def test_tool_choice_unknown_name_is_refused(tool_llm: ChatFocus) -> None:
    with pytest.raises(InvalidOptionError, match="not one of the bound tools"):
        tool_llm.bind_tools([lookup_price], tool_choice="delete_everything")


def test_tool_choice_instructs_the_model(tool_llm: ChatFocus, scripted: Any) -> None:
    log = scripted(CALL_A1)
    tool_llm.bind_tools([lookup_price, list_products], tool_choice="lookup_price").invoke("hi")
    assert "You must answer with a call to the tool `lookup_price`." in log.prompts[-1]
    tool_llm.bind_tools([lookup_price], tool_choice="any").invoke("hi")
    assert "You must answer with a call to one of the tools." in log.prompts[-1]
    # "none": the model is not shown the tools at all, and its output is not parsed for calls.
    message = tool_llm.bind_tools([lookup_price], tool_choice="none").invoke("hi")
    assert "<tools>" not in log.prompts[-1] and message.tool_calls == []


@pytest.mark.parametrize("schema", [Verdict, VerdictDict, Verdict.model_json_schema()])
def test_structured_output_function_calling(tool_llm: ChatFocus, scripted: Any, schema: Any) -> None:
    name = "Verdict" if schema is not VerdictDict else "VerdictDict"
    scripted(
        f'<tool_call>\n{{"name": "{name}", "arguments": {{"cheaper": "A-1", "saving": 15}}}}\n</tool_call>'
    )
    result = tool_llm.with_structured_output(schema).invoke("Which is cheaper?")
    if schema is Verdict:
        assert result == Verdict(cheaper="A-1", saving=15)
    else:
        assert result == {"cheaper": "A-1", "saving": 15}


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_structured_output_json_methods(tool_llm: ChatFocus, scripted: Any, method: str) -> None:
    log = scripted('{"cheaper": "B-2", "saving": 3.5}')
    result = tool_llm.with_structured_output(Verdict, method=method).invoke("Which is cheaper?")
    assert result == Verdict(cheaper="B-2", saving=3.5)
    if method == "json_schema":
        assert '"saving"' in log.prompts[-1]  # the schema was shown to the model
    assert "JSON object" in log.prompts[-1]


def test_structured_output_include_raw_keeps_parse_errors(tool_llm: ChatFocus, scripted: Any) -> None:
    # The call is grammar-constrained, so only the budget can break it: a cut-off call is an invalid call
    # saying so, and the parser reports IncompleteOutputError instead of returning None silently.
    scripted(
        CALL_A1.replace("lookup_price", "Verdict").replace(
            '{"sku": "A-1"}', '{"cheaper": "A-1", "saving": 2}'
        )
    )
    short = ChatFocus(decoder=tool_llm.focus_decoder, max_tokens=12)
    out = short.with_structured_output(Verdict, include_raw=True).invoke("Which is cheaper?")
    assert isinstance(out["raw"], AIMessage) and out["raw"].tool_calls == []
    assert "cut off" in out["raw"].invalid_tool_calls[0]["error"]
    assert out["raw"].response_metadata["constraint_satisfied"] is False
    assert out["parsed"] is None and isinstance(out["parsing_error"], IncompleteOutputError)
    with pytest.raises(IncompleteOutputError, match="max_tokens"):
        short.with_structured_output(Verdict).invoke("Which is cheaper?")


def _script(monkeypatch: Any, chat: ChatFocus, reply: str) -> list[str]:
    """From now on ``chat``'s model answers ``reply`` (then its first end token); returns the prompts it was
    shown. For checkpoints the ``scripted`` fixture (Qwen's <|im_end|>) does not cover."""
    decoder = chat.focus_decoder
    tokenizer = decoder.tokenizer
    seen: list[str] = []

    class Scripted(TokenChooser):
        def __init__(self, options: Any, generator: Any = None, constraint: Any = None) -> None:
            super().__init__(options, generator, constraint)
            self.tokens = None

        def __call__(self, combined: Any, sequence: Any) -> int:
            if self.tokens is None:
                seen.append(tokenizer.decode(sequence.tolist()))
                self.tokens = tokenizer(reply, add_special_tokens=False)["input_ids"] + [
                    min(decoder.eos_token_ids)
                ]
            return self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]

    monkeypatch.setattr("focus_integrations.decoder.TokenChooser", Scripted)
    return seen


def test_template_without_tool_support_gets_instructions(tiny_checkpoint: Any, monkeypatch: Any) -> None:
    # LLaVA's template has no tool syntax: the tools go into a system instruction (generic JSON calls).
    llava = ChatFocus(model=str(tiny_checkpoint("llava")), max_tokens=200)
    seen = _script(monkeypatch, llava, json.dumps({"name": "lookup_price", "arguments": {"sku": "A-1"}}))
    message = llava.bind_tools([lookup_price]).invoke("How much is A-1?")
    assert "You can call these tools" in seen[-1] and '"lookup_price"' in seen[-1]
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("lookup_price", {"sku": "A-1"})]


def test_tool_history_on_template_without_tool_syntax(tiny_checkpoint: Any, monkeypatch: Any) -> None:
    # LLaVA's template knows no tool role and no tool_calls: earlier calls become assistant JSON text and
    # tool results become user turns that name the call, images included, so nothing is dropped.
    llava = ChatFocus(model=str(tiny_checkpoint("llava")), max_tokens=40)
    seen = _script(monkeypatch, llava, "A-1.")
    history = [
        HumanMessage("Which is cheaper?"),
        AIMessage("", tool_calls=[{"name": "lookup_price", "args": {"sku": "A-1"}, "id": "call_7"}]),
        ToolMessage(
            content=[
                {"type": "text", "text": "40 EUR"},
                {"type": "image", "base64": png_b64("red"), "mime_type": "image/png"},
            ],
            tool_call_id="call_7",
            name="lookup_price",
        ),
    ]
    message = llava.bind_tools([lookup_price]).invoke(history)
    prompt = seen[-1]
    assert 'ASSISTANT: {"name": "lookup_price", "arguments": {"sku": "A-1"}}' in prompt
    assert "USER: <image>" in prompt and "Result of tool lookup_price (call call_7):" in prompt
    assert "TOOL:" not in prompt
    assert message.content == "A-1." and message.response_metadata["focus"]["n_images"] == 1
    assert (
        llava.get_num_tokens_from_messages(history, tools=[lookup_price])
        == message.usage_metadata["input_tokens"]
    )


def test_openai_style_response_format(tool_llm: ChatFocus, scripted: Any) -> None:
    log = scripted('{"cheaper": "A-1", "saving": 1}')
    schema = {"type": "object", "properties": {"cheaper": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}
    message = tool_llm.invoke("Which is cheaper?", response_format=response_format)
    assert json.loads(message.content) == {"cheaper": "A-1", "saving": 1}
    assert json.dumps(schema) in log.prompts[-1]


def test_tool_choice_is_enforced_by_the_grammar(tool_llm: ChatFocus, scripted: Any) -> None:
    # The answer starts with the template's opening markup; the grammar then allows only a call to the named
    # tool (a script that calls another tool cannot be decoded).
    log = scripted(CALL_A1)
    message = tool_llm.bind_tools([lookup_price, list_products], tool_choice="lookup_price").invoke("hi")
    assert log.prompts[-1].endswith("<tool_call>\n")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("lookup_price", {"sku": "A-1"})]
    chunks = list(tool_llm.bind_tools([lookup_price], tool_choice="lookup_price").stream("hi"))
    assert "".join(c.content for c in chunks if isinstance(c.content, str)) == ""  # markup never streamed
    scripted('<tool_call>\n{"name": "list_products", "arguments": {}}\n</tool_call>')
    with pytest.raises(ConstraintError):
        tool_llm.bind_tools([lookup_price, list_products], tool_choice="lookup_price").invoke("hi")
