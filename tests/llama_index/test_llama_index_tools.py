"""Tool calling: LlamaIndex tools rendered by the checkpoint's chat template, answers parsed into ToolCallBlocks.

The tiny Qwen2.5-VL has a tool-aware template but random weights, so it never emits a real call by itself: the
tests check that the tools reach the prompt (token counts from the model's own tokenizer), that required and
named tool choices force the answer to open a call, that FunctionAgent runs on the LLM, and feed known model
text through the LLM's answer assembly to check the parsing.
"""

from __future__ import annotations

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import ChatMessage, ChatResponse, ImageBlock, TextBlock
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.tools import FunctionTool

from focus_integrations.errors import InvalidOptionError
from focus_integrations.llama_index import FocusMultiModalLLM, chat_messages_to_engine
from focus_integrations.llama_index.tools import INVALID_TOOL_CALLS_KEY, ToolCallBlock
from focus_integrations.outputs import GenerationOutput, Usage


def zoom(region: str, factor: float = 2.0) -> str:
    """Zoom into a region of the image (e.g. 'top left') by a factor."""
    return f"zoomed {region} x{factor}"


def count_shapes(colour: str) -> int:
    """Count the shapes of a colour."""
    return 0


TOOLS = [FunctionTool.from_defaults(fn=zoom), FunctionTool.from_defaults(fn=count_shapes)]


@pytest.fixture
def llm(decoder) -> FocusMultiModalLLM:
    return FocusMultiModalLLM(decoder=decoder, max_new_tokens=4, seed=0)


@pytest.fixture
def messages(image_files) -> list[ChatMessage]:
    return [
        ChatMessage(
            role="user",
            blocks=[
                ImageBlock(path=image_files[0]),
                ImageBlock(path=image_files[1]),
                TextBlock(text="Zoom in."),
            ],
        )
    ]


def _prompt_tokens(decoder, messages, tools) -> int:
    schemas = [tool.metadata.to_openai_tool() for tool in tools] or None
    return decoder.count_tokens(chat_messages_to_engine(messages), tools=schemas)


def test_a_tool_aware_template_makes_a_function_calling_llm(llm):
    assert isinstance(llm, FunctionCallingLLM)
    assert llm.supports_tools() and llm.metadata.is_function_calling_model


def test_tools_reach_the_chat_template(llm, decoder, messages):
    def input_tokens(**kwargs) -> int:
        return llm.chat(messages, **kwargs).raw["usage"]["input_tokens"]

    plain = input_tokens()
    assert plain == _prompt_tokens(decoder, messages, [])
    assert input_tokens(tools=TOOLS) == _prompt_tokens(decoder, messages, TOOLS) > plain
    assert input_tokens(tools=TOOLS, tool_choice="auto") == _prompt_tokens(decoder, messages, TOOLS)
    assert input_tokens(tools=TOOLS, tool_choice="none") == plain
    schema = TOOLS[0].metadata.to_openai_tool()
    assert input_tokens(tools=[schema]) == _prompt_tokens(decoder, messages, TOOLS[:1])


def _attempted_calls(response: ChatResponse) -> list[str | None]:
    """Names of the calls the answer made, well-formed or not (the random model rarely finishes the JSON)."""
    valid = [block.tool_name for block in response.message.blocks if isinstance(block, ToolCallBlock)]
    invalid = [call["name"] for call in response.message.additional_kwargs.get(INVALID_TOOL_CALLS_KEY, [])]
    return valid + invalid


@pytest.mark.parametrize(
    "choice, name",
    [("count_shapes", "count_shapes"), ({"type": "function", "function": {"name": "zoom"}}, "zoom")],
)
def test_a_named_tool_choice_is_enforced(llm, decoder, messages, choice, name):
    # The answer is forced to open a call to that tool; only that tool is rendered into the prompt.
    response = llm.chat(messages, tools=TOOLS, tool_choice=choice)
    assert _attempted_calls(response) == [name]
    assert response.message.content == ""  # call markup is never shown as text
    only = [tool for tool in TOOLS if tool.metadata.name == name]
    assert response.raw["usage"]["input_tokens"] > _prompt_tokens(decoder, messages, only)
    streamed = list(llm.stream_chat(messages, tools=TOOLS, tool_choice=choice))
    assert "".join(chunk.delta for chunk in streamed) == ""
    assert _attempted_calls(streamed[-1]) == [name]


@pytest.mark.parametrize("kwargs", [{"tool_required": True}, {"tool_choice": "required"}])
def test_a_required_call_is_enforced(llm, messages, kwargs):
    free = llm.chat(messages, tools=TOOLS)
    assert _attempted_calls(free) == []  # left to itself, the random model writes no call
    forced = llm.chat(messages, tools=TOOLS, **kwargs)
    assert len(_attempted_calls(forced)) == 1 and forced.message.content == ""


def test_chat_with_tools_and_streaming_give_the_same_answer(llm, messages):
    response = llm.chat_with_tools(TOOLS, chat_history=messages)
    streamed = list(llm.stream_chat_with_tools(TOOLS, chat_history=messages))
    assert streamed[-1].message.content == response.message.content
    assert "".join(chunk.delta for chunk in streamed) == response.message.content
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == [
        *llm.get_tool_calls_from_response(streamed[-1], error_on_no_tool_call=False)
    ]


async def test_function_agent_runs_on_the_llm(llm, messages):
    agent = FunctionAgent(tools=TOOLS, llm=llm, system_prompt="You look at product photos.")
    result = await agent.run(user_msg=messages[0])
    assert result.response.role == "assistant"
    assert isinstance(result.response.content, str)
    assert result.raw["settings"]["n_images"] == 2  # the user's images reached the engine through the agent


def _assemble(
    llm: FocusMultiModalLLM, messages, deltas: list[str], tools=TOOLS, **kwargs
) -> list[ChatResponse]:
    """Run known model text through the LLM's stream assembly (the tiny model cannot write tool calls)."""
    call = llm._call(lambda: chat_messages_to_engine(messages), {"tools": tools, **kwargs}, chat=True)
    push = llm._chat_responses(call)
    text = "".join(deltas)
    output = GenerationOutput(
        text=text, token_ids=[1] * len(deltas), usage=Usage(10, len(deltas)), finish_reason="stop"
    )
    responses = [push(delta, None) for delta in deltas] + [push("", output)]
    final = llm._final_chat_response(call, output)
    # Streamed and non-streamed answers agree (call ids are fresh per parse).
    assert responses[-1].message.content == final.message.content
    assert [(c.tool_name, c.tool_kwargs) for c in llm.get_tool_calls_from_response(final, False)] == [
        (c.tool_name, c.tool_kwargs) for c in llm.get_tool_calls_from_response(responses[-1], False)
    ]
    return [r for r in responses if r is not None]


def test_tool_call_markup_becomes_tool_call_blocks_and_never_streams(llm, messages):
    deltas = [
        "Let me look",
        " closer.",
        "<tool_",
        'call>{"name": "zoom", "arguments": {"region": "top left"}}',
        "</tool_call>",
    ]
    responses = _assemble(llm, messages, deltas)
    assert "".join(r.delta for r in responses) == "Let me look closer."
    assert all("<tool_call>" not in r.message.content for r in responses)
    calls = llm.get_tool_calls_from_response(responses[-1])
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("zoom", {"region": "top left"})]
    assert calls[0].tool_id  # every call gets an id, so FunctionAgent can match the tool's answer to it
    assert responses[-1].raw["usage"]["output_tokens"] == len(deltas)


def test_malformed_and_parallel_calls(llm, messages):
    bad = _assemble(llm, messages, ['<tool_call>{"name": "zoom", "arguments": </tool_call>'])[-1]
    assert llm.get_tool_calls_from_response(bad, error_on_no_tool_call=False) == []
    assert bad.message.additional_kwargs[INVALID_TOOL_CALLS_KEY][0]["name"] in (None, "zoom")
    with pytest.raises(ValueError, match="tool call"):
        llm.get_tool_calls_from_response(bad)
    two = '<tool_call>{"name": "zoom", "arguments": {"region": "a"}}</tool_call><tool_call>{"name": "count_shapes", "arguments": {"colour": "red"}}</tool_call>'
    both = _assemble(llm, messages, [two])[-1]
    assert [c.tool_name for c in llm.get_tool_calls_from_response(both)] == ["zoom", "count_shapes"]
    single = llm._validate_chat_with_tools_response(both, TOOLS, allow_parallel_tool_calls=False)
    assert [b.tool_name for b in single.message.blocks if isinstance(b, ToolCallBlock)] == ["zoom"]


def test_tool_history_round_trips_into_the_template(llm, decoder, messages):
    history = [
        *messages,
        ChatMessage(
            role="assistant",
            blocks=[ToolCallBlock(tool_call_id="c1", tool_name="zoom", tool_kwargs={"region": "a"})],
        ),
        ChatMessage(role="tool", content="zoomed a x2", additional_kwargs={"tool_call_id": "c1"}),
    ]
    prompt = decoder.render_prompt(
        chat_messages_to_engine(history), tools=[t.metadata.to_openai_tool() for t in TOOLS]
    )
    assert '"name": "zoom"' in prompt and "zoomed a x2" in prompt
    assert llm.chat(history, tools=TOOLS).raw["settings"]["n_images"] == 2


def test_tools_on_a_template_without_tool_support_are_refused(tiny_checkpoint, messages):
    from focus_integrations import FocusDecoder

    llava = FocusMultiModalLLM(
        decoder=FocusDecoder.from_pretrained(tiny_checkpoint("llava")), max_new_tokens=2
    )
    assert not llava.supports_tools() and not llava.metadata.is_function_calling_model
    with pytest.raises(InvalidOptionError, match="ReActAgent"):
        llava.chat(messages, tools=TOOLS)
    assert llava.chat(messages).raw["settings"]["n_images"] == 2


def test_bad_tools_raise_invalid_option(llm, messages):
    with pytest.raises(InvalidOptionError, match="tool 0"):
        llm.chat(messages, tools=[object()])
    with pytest.raises(InvalidOptionError, match="tool_choice"):
        llm.chat(messages, tools=TOOLS, tool_choice="rotate")
    with pytest.raises(InvalidOptionError, match="unique"):
        llm.chat(messages, tools=[TOOLS[0], TOOLS[0]])
