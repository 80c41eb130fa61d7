"""ChatFocus on every supported model family (tiny random checkpoints): images, text-only turns, and a tool
history, through each family's own chat template and processor."""

from __future__ import annotations

from typing import Any

import pytest
from focus_lc_helpers import png_b64
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from focus_integrations.langchain import ChatFocus
from focus_integrations.testing import FAMILIES


@tool
def lookup_price(sku: str) -> float:
    """Price of a product."""
    return 1.0


def _image(color: str) -> dict[str, Any]:
    return {"type": "image", "base64": png_b64(color), "mime_type": "image/png"}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_end_to_end(family: str, tiny_checkpoint: Any) -> None:
    llm = ChatFocus(model=str(tiny_checkpoint(family)), max_tokens=3, seed=0)
    two = llm.invoke(
        [SystemMessage("Compare."), HumanMessage(content=[_image("red"), _image("blue"), "Which?"])]
    )
    focus = two.response_metadata["focus"]
    assert (focus["rule"], focus["n_images"], focus["n_rows"]) == ("focus", 2, 3)
    assert two.usage_metadata["output_tokens"] <= 3
    # The same request given to the engine directly: the adapter adds nothing and loses nothing.
    engine = llm.focus_decoder.generate(
        messages=[
            {"role": "system", "content": "Compare."},
            {
                "role": "user",
                "content": [
                    {"type": "image", "base64": png_b64("red")},
                    {"type": "image", "base64": png_b64("blue")},
                    {"type": "text", "text": "Which?"},
                ],
            },
        ],
        max_new_tokens=3,
        seed=0,
    )
    assert two.content == engine.text and two.usage_metadata["input_tokens"] == engine.usage.input_tokens

    text_only = llm.invoke("Hello")
    assert text_only.response_metadata["focus"]["n_images"] == 0

    history = [
        HumanMessage("Price of A-1?"),
        AIMessage("", tool_calls=[{"name": "lookup_price", "args": {"sku": "A-1"}, "id": "call_1"}]),
        ToolMessage(content=[{"type": "text", "text": "1.0"}, _image("green")], tool_call_id="call_1"),
        HumanMessage(content=[_image("red"), "And this one?"]),
    ]
    answer = llm.bind_tools([lookup_price]).invoke(history)
    assert answer.response_metadata["focus"]["n_images"] == 2
    assert (
        llm.get_num_tokens_from_messages(history, tools=[lookup_price])
        == answer.usage_metadata["input_tokens"]
    )
