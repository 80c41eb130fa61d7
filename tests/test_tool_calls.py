"""parse_tool_calls / ToolCallStreamParser: Qwen markup, generic JSON, malformed output, streaming."""

from __future__ import annotations

import json
import random

import pytest

from focus_integrations.tool_calls import ToolCallStreamParser, parse_tool_calls

QWEN_TWO_CALLS = (
    "I will look both up.\n"
    '<tool_call>\n{"name": "lookup", "arguments": {"sku": "A-1"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "lookup", "arguments": {"sku": "B-2", "n": 3}}\n</tool_call>'
)


def test_qwen_markup_calls_and_content() -> None:
    parsed = parse_tool_calls(QWEN_TWO_CALLS)
    assert parsed.content == "I will look both up."
    assert [(c["name"], c["arguments"]) for c in parsed.tool_calls] == [
        ("lookup", {"sku": "A-1"}),
        ("lookup", {"sku": "B-2", "n": 3}),
    ]
    ids = [c["id"] for c in parsed.tool_calls]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 2
    assert parsed.invalid == []


def test_plain_text_is_untouched_content() -> None:
    text = "The first shoe is cheaper: 40 < 55 and the price is {sale}."
    parsed = parse_tool_calls(text)
    assert parsed.content == text
    assert parsed.tool_calls == [] and parsed.invalid == []


@pytest.mark.parametrize(
    "body, expected_args",
    [
        ('{"name": "f", "arguments": {"x": 1}}', {"x": 1}),
        ('{"name": "f", "arguments": "{\\"x\\": 1}"}', {"x": 1}),  # OpenAI-style string arguments
        ('{"name": "f", "parameters": {"x": 1}}', {"x": 1}),
        ('{"name": "f"}', {}),  # a call with no arguments
        ('{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}', {"x": 1}),
        ('```json\n{"name": "f", "arguments": {"x": 1}}\n```', {"x": 1}),
        ("{'name': 'f', 'arguments': {'x': 1}}", {"x": 1}),  # a Python dict, as small models write
    ],
)
def test_markup_body_shapes(body: str, expected_args: dict) -> None:
    parsed = parse_tool_calls(f"<tool_call>{body}</tool_call>")
    assert parsed.invalid == []
    assert [(c["name"], c["arguments"]) for c in parsed.tool_calls] == [("f", expected_args)]


def test_model_supplied_id_is_kept() -> None:
    parsed = parse_tool_calls('<tool_call>{"id": "abc", "name": "f", "arguments": {}}</tool_call>')
    assert parsed.tool_calls[0]["id"] == "abc"


@pytest.mark.parametrize(
    "body, name, reason",
    [
        ('{"name": "f", "arguments": {x: 1}}', "f", "not valid JSON"),
        ('{"name": "f", "arguments": {"x": 1}', "f", "not valid JSON"),  # cut off
        ('{"arguments": {"x": 1}}', None, "not a tool call"),
        ('{"name": "f", "arguments": [1, 2]}', "f", "bad arguments"),
        ('{"name": "f", "arguments": "not json"}', "f", "bad arguments"),
        ("42", None, "not a tool call"),
        ("", None, "not valid JSON"),
        ("{'name': 'f', 'arguments': {1, 2}}", "f", "not valid JSON"),  # a Python set: no JSON form
        ("{'name': 'f', 'arguments': __import__('os')}", "f", "not valid JSON"),  # code is never run
    ],
)
def test_malformed_markup_becomes_invalid_never_raises(body: str, name: str | None, reason: str) -> None:
    parsed = parse_tool_calls(f"Calling.<tool_call>{body}</tool_call>")
    assert parsed.tool_calls == []
    assert parsed.content == "Calling."
    [invalid] = parsed.invalid
    assert invalid["name"] == name
    assert reason in invalid["error"]
    assert invalid["id"]


def test_unclosed_block_at_end_of_output() -> None:
    # Generation stopped (stop string / max tokens) before </tool_call>: the call still counts if complete.
    parsed = parse_tool_calls('<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n')
    assert [(c["name"], c["arguments"]) for c in parsed.tool_calls] == [("f", {"x": 1})]
    cut = parse_tool_calls('<tool_call>\n{"name": "f", "argu')
    assert cut.tool_calls == [] and len(cut.invalid) == 1


def test_mixed_valid_and_invalid() -> None:
    text = '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{oops</tool_call>'
    parsed = parse_tool_calls(text)
    assert [c["name"] for c in parsed.tool_calls] == ["a"]
    assert len(parsed.invalid) == 1


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "lookup", "arguments": {"sku": "A-1"}}',
        '  {"tool": "lookup", "parameters": {"sku": "A-1"}}  ',
        '[{"name": "lookup", "arguments": {"sku": "A-1"}}]',
        '{"tool_calls": [{"name": "lookup", "arguments": {"sku": "A-1"}}]}',
        '[TOOL_CALLS][{"name": "lookup", "arguments": {"sku": "A-1"}}]',  # Mistral / Pixtral
        'Here you go:\n```json\n{"name": "lookup", "arguments": {"sku": "A-1"}}\n```',
    ],
)
def test_generic_json_fallback(text: str) -> None:
    parsed = parse_tool_calls(text, tool_names=["lookup"])
    assert [(c["name"], c["arguments"]) for c in parsed.tool_calls] == [("lookup", {"sku": "A-1"})]
    assert "lookup" not in parsed.content


def test_generic_json_that_is_data_stays_content() -> None:
    data = '{"name": "Ann", "age": 3}'  # extra keys: data, not a call
    assert parse_tool_calls(data).content == data
    unknown = '{"name": "not_a_tool", "arguments": {}}'
    parsed = parse_tool_calls(unknown, tool_names=["lookup"])
    assert parsed.tool_calls == [] and parsed.content == unknown
    assert parse_tool_calls('{"name": "lookup", "arguments": {}}', generic_json=False).tool_calls == []
    broken = '{"name": "lookup", "arguments": {'
    assert parse_tool_calls(broken, tool_names=["lookup"]).content == broken


def _stream(text: str, sizes: list[int], **kwargs) -> tuple[list[str], object]:
    parser = ToolCallStreamParser(**kwargs)
    shown, start = [], 0
    for size in sizes:
        shown.append(parser.feed(text[start : start + size]))
        start += size
    shown.append(parser.feed(text[start:]))
    tail, parsed = parser.finish()
    shown.append(tail)
    return shown, parsed


@pytest.mark.parametrize("seed", range(20))
def test_stream_never_leaks_markup_and_matches_parse(seed: int) -> None:
    rng = random.Random(seed)
    text = "Sure.  " + QWEN_TWO_CALLS + "\nDone <b>now</b>.\n"
    sizes = [rng.randint(1, 7) for _ in range(len(text))]
    shown, parsed = _stream(text, sizes)
    joined = "".join(shown)
    for piece in shown:
        assert "<tool_call" not in piece and "sku" not in piece
    reference = parse_tool_calls(text)
    assert (
        joined == parsed.content == reference.content == "Sure.  I will look both up.\n\n\nDone <b>now</b>."
    )
    assert [c["arguments"] for c in parsed.tool_calls] == [c["arguments"] for c in reference.tool_calls]


def test_stream_shows_text_before_a_call_early() -> None:
    parser = ToolCallStreamParser()
    assert parser.feed("Checking the ") == "Checking the"
    assert parser.feed("catalog <tool") == " catalog"  # "<tool" may start markup: held back
    assert parser.feed("_call>{") == ""
    assert parser.feed('"name": "f"}</tool_call>') == ""
    tail, parsed = parser.finish()
    assert tail == "" and parsed.tool_calls[0]["name"] == "f"


def test_stream_lone_angle_bracket_is_released() -> None:
    parser = ToolCallStreamParser()
    assert parser.feed("a <") == "a"
    assert parser.feed("b") == " <b"


def test_stream_generic_json_is_held_to_the_end() -> None:
    call = json.dumps({"name": "lookup", "arguments": {"sku": "A-1"}})
    shown, parsed = _stream(call, [3] * (len(call) // 3), tool_names=["lookup"])
    assert "".join(shown) == "" and parsed.tool_calls[0]["arguments"] == {"sku": "A-1"}
    data = json.dumps({"answer": 1})
    shown, parsed = _stream(data, [2] * (len(data) // 2), tool_names=["lookup"])
    assert "".join(shown) == data and parsed.tool_calls == []


def test_feed_after_finish_raises() -> None:
    parser = ToolCallStreamParser()
    parser.finish()
    with pytest.raises(RuntimeError):
        parser.feed("x")


@pytest.mark.parametrize("seed", range(10))
def test_stream_fenced_and_bare_json_match_parse_under_any_chunking(seed: int) -> None:
    rng = random.Random(seed)
    texts = [
        'Here:\n```json\n{"name": "lookup", "arguments": {"sku": "A-1"}}\n```\nand ```py\nprint(1)\n``` done',
        '  [{"name": "lookup", "arguments": {"sku": "A-1"}}, {"tool": "lookup", "parameters": {}}]  ',
        '{"answer": 42} <tool_call>{"name": "lookup", "arguments": {}}</tool_call>',
    ]
    for text in texts:
        sizes = [rng.randint(1, 5) for _ in range(len(text))]
        shown, parsed = _stream(text, sizes, tool_names=["lookup"])
        reference = parse_tool_calls(text, tool_names=["lookup"])
        assert "".join(shown) == parsed.content == reference.content
        assert [c["arguments"] for c in parsed.tool_calls] == [c["arguments"] for c in reference.tool_calls]
        assert all('"lookup"' not in piece for piece in shown)
