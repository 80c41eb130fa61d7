"""ChatFocus inside `langchain.agents.create_agent`, with a tool that returns product images.

The agent loop, the tool, the ToolMessage with image blocks, and the engine run for real; the model's words
are scripted (conftest.py): first a Qwen `<tool_call>`, then, once the tool's images are in the prompt, an
answer. The test checks that the second model call saw the images and decoded them with FOCUS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from focus_lc_helpers import png_b64
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from focus_integrations.langchain import ChatFocus

ANSWER = "The red pendant (A-1) is cheaper: 40 EUR against 55 EUR."


@tool
def find_product_images(query: str) -> list[dict[str, Any]]:
    """Find catalog products matching the query; returns their photos and prices."""
    return [
        {"type": "text", "text": "A-1 red pendant, 40 EUR; B-2 blue pendant, 55 EUR"},
        {"type": "image", "base64": png_b64("red"), "mime_type": "image/png"},
        {"type": "image", "base64": png_b64("blue", (24, 32)), "mime_type": "image/png"},
    ]


def _agent_script(prompt: str) -> str:
    """A tool-using model: call the tool first; answer once the tool's response (with images) is in."""
    if "<tool_response>" not in prompt:
        return (
            '<tool_call>\n{"name": "find_product_images", "arguments": {"query": "pendants"}}\n</tool_call>'
        )
    return ANSWER


def _check_run(messages: list[Any], log: Any) -> None:
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    call_message, tool_message, final = messages[1], messages[2], messages[3]
    assert call_message.tool_calls[0]["name"] == "find_product_images"
    assert call_message.tool_calls[0]["args"] == {"query": "pendants"}
    assert (
        isinstance(tool_message, ToolMessage)
        and tool_message.tool_call_id == call_message.tool_calls[0]["id"]
    )
    assert sum(1 for block in tool_message.content if block["type"] == "image") == 2
    assert isinstance(final, AIMessage) and final.content == ANSWER and not final.tool_calls
    # First call: tools rendered, no images; second: the two product photos, decoded with FOCUS (2 + 1 rows).
    assert "<tools>" in log.prompts[0] and log.prompts[0].count("<|vision_start|>") == 0
    assert log.prompts[1].count("<|vision_start|>") == 2
    focus = final.response_metadata["focus"]
    assert (focus["rule"], focus["n_images"], focus["n_rows"]) == ("focus", 2, 3)
    assert call_message.response_metadata["focus"]["n_images"] == 0


def test_agent_loop_with_image_tool(qwen_path: str, scripted: Any) -> None:
    log = scripted(_agent_script)
    agent = create_agent(ChatFocus(model=qwen_path, max_tokens=200), tools=[find_product_images])
    state = agent.invoke({"messages": [HumanMessage("Which pendant is cheaper?")]})
    _check_run(state["messages"], log)


async def test_agent_loop_async_streaming(qwen_path: str, scripted: Any) -> None:
    log = scripted(_agent_script)
    agent = create_agent(ChatFocus(model=qwen_path, max_tokens=200), tools=[find_product_images])
    streamed: list[str] = []
    async for token, _meta in agent.astream(
        {"messages": [HumanMessage("Which pendant is cheaper?")]}, stream_mode="messages"
    ):
        if isinstance(token, AIMessage) and isinstance(token.content, str):
            streamed.append(token.content)
    text = "".join(streamed)
    assert ANSWER in text and "<tool_call>" not in text  # markup never reaches the streamed text
    state = await agent.ainvoke({"messages": [HumanMessage("Which pendant is cheaper?")]})
    _check_run(state["messages"], type("Log", (), {"prompts": log.prompts[-2:]}))


def test_example_script_runs_offline() -> None:
    """examples/product_comparison_agent.py end to end (folder fallback, retrieve-first policy)."""
    import runpy

    example = Path(__file__).resolve().parents[2] / "examples" / "product_comparison_agent.py"
    namespace = runpy.run_path(str(example), run_name="product_comparison_agent")
    result = namespace["main"](["--no-store", "--max-tokens", "6", "--compare"])
    assert result["tool_calls"] and result["tool_calls"][0]["name"] == "find_product_images"
    assert result["n_images"] >= 2 and result["focus"]["rule"] == "focus"
    assert isinstance(result["vanilla_answer"], str)
