"""One test per defect the adversarial suite found (each failed before its fix), at the layer that was fixed."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from focus_integrations.errors import DatasetLayoutError, FocusError, InvalidOptionError
from focus_integrations.options import DecodingOptions


def test_an_empty_alpha_table_is_refused() -> None:
    with pytest.raises(InvalidOptionError, match="empty"):
        DecodingOptions.resolve(alpha={})  # was accepted: a table with no alpha for any N


@pytest.mark.parametrize("value", [[5], [5, 6], [[5], 6]])
def test_bad_words_ids_must_be_lists_of_lists(value) -> None:
    with pytest.raises(InvalidOptionError, match="bad_words_ids"):
        DecodingOptions.resolve(bad_words_ids=value)
    assert DecodingOptions.resolve(bad_words_ids=[[5], [5, 6]]).bad_words_ids == ((5,), (5, 6))


def test_chat_focus_call_options_of_a_wrong_type_are_invalid_option_errors(tiny_checkpoint) -> None:
    pytest.importorskip("langchain_core")
    from focus_integrations import FocusDecoder
    from focus_integrations.langchain import ChatFocus

    llm = ChatFocus(decoder=FocusDecoder.from_pretrained(str(tiny_checkpoint("qwen2_5_vl"))), max_tokens=2)
    for bad in ({"stop": 5}, {"temperature": {}}, {"max_tokens": "x"}):
        with pytest.raises(InvalidOptionError):
            llm.invoke("Hi", **bad)  # was a TypeError from the tracing metadata (_get_ls_params)


def _chat_request(body: dict):
    from focus_integrations.server import protocol
    from focus_integrations.server.config import Limits
    from focus_integrations.server.errors import APIError

    class Decoder:  # what chat_request reads of a decoder before any model work
        context_length = 4096

    try:
        protocol.chat_request(body, Decoder(), Limits(), lambda url: None, "m")
    except APIError as err:
        return err.status, err.body()["error"]
    return 200, None


@pytest.mark.parametrize(
    "extra",
    [
        {"stream": "yes"},
        {"stream": 1},
        {"stream_options": "x"},
        {"stream_options": {"include_usage": "yes"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": 5}}]},
        {"tool_choice": "required"},  # without tools
    ],
)
def test_the_server_refuses_wrongly_typed_stream_and_tool_fields(extra: dict) -> None:
    pytest.importorskip("fastapi")
    status, error = _chat_request({"messages": [{"role": "user", "content": "Hi"}], **extra})
    assert status == 400 and error["type"] == "invalid_request_error", (extra, status)


def test_the_server_needs_content_in_user_turns() -> None:
    pytest.importorskip("fastapi")
    status, error = _chat_request({"messages": [{"role": "user"}]})
    assert status == 400 and "needs 'content'" in error["message"]


def test_the_server_answers_a_deeply_nested_body_with_a_400(tiny_checkpoint) -> None:
    pytest.importorskip("fastapi")
    import httpx

    from focus_integrations import FocusDecoder
    from focus_integrations.server import ServerConfig, create_app
    from focus_integrations.server.engines import make_engine
    from focus_integrations.testing.adversarial_serving import serving

    decoder = FocusDecoder.from_pretrained(str(tiny_checkpoint("qwen2_5_vl")))
    with serving(create_app(make_engine(decoder, "serial"), ServerConfig(model_id="m"))) as url:
        body = b"[" * 100_000 + b"]" * 100_000  # was a 500 (RecursionError from json.loads)
        reply = httpx.post(url + "/v1/chat/completions", content=body, timeout=30)
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]["message"]


def _eval(argv: list[str]) -> tuple[int, list[str]]:
    from focus_integrations import cli

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(["eval", "winoground", *argv])
    return status, [line for line in stderr.getvalue().splitlines() if line.strip() and "\r" not in line]


@pytest.fixture
def winoground(tmp_path: Path, monkeypatch) -> Path:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from focus_integrations.testing import benchmark_data

    return benchmark_data.winoground(tmp_path / "wino", n=3)


def test_a_corrupt_parquet_file_is_a_dataset_layout_error(winoground: Path) -> None:
    from focus_integrations.harness.benchmarks import benchmarks
    from focus_integrations.harness.layouts import load_local

    (parquet,) = winoground.rglob("*.parquet")
    parquet.write_bytes(b"PAR1" + bytes(200))
    with pytest.raises(DatasetLayoutError, match="cannot be read"):
        load_local(benchmarks()["winoground"], winoground)


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--seed", "-1"], "seed"), (["--alpha", "inf"], "alpha"), (["--vcd-alpha", "nan"], "alpha")],
)
def test_focus_eval_checks_seed_and_alphas_before_any_row_runs(
    winoground: Path, tmp_path: Path, flags: list[str], message: str
) -> None:
    status, lines = _eval(["--data", str(winoground), "--limit", "1", "--out", str(tmp_path / "o"), *flags])
    assert status == 2 and len(lines) == 1 and lines[0].startswith("focus: error:") and message in lines[0]
    assert not (tmp_path / "o" / "records.jsonl").exists()


def test_focus_eval_out_that_is_a_file_is_one_error_line(winoground: Path, tmp_path: Path) -> None:
    out = tmp_path / "a-file"
    out.write_text("x")
    status, lines = _eval(["--data", str(winoground), "--limit", "1", "--alpha", "0.1", "--out", str(out)])
    assert status == 2 and lines == [lines[0]] and "cannot make the run folder" in lines[0]
    assert out.read_text() == "x"  # the file is untouched


def test_generate_batch_with_return_exceptions_refuses_a_bad_option_in_its_place(tiny_checkpoint) -> None:
    from focus_integrations import FocusDecoder
    from focus_integrations.testing.adversarial_cases import good_image

    decoder = FocusDecoder.from_pretrained(str(tiny_checkpoint("qwen2_5_vl")))
    good = {"images": [good_image(1), good_image(2)], "prompt": "Which?", "max_new_tokens": 3}
    requests = [good, {**good, "min_length": -1}, "not a dict", {**good, "mode": "vanilla"}]
    # was: the batch raised for the bad option, and both good answers were lost
    outputs = decoder.generate_batch(requests, return_exceptions=True)
    assert isinstance(outputs[1], InvalidOptionError) and "min_length" in str(outputs[1])
    assert isinstance(outputs[2], FocusError)
    assert outputs[0].token_ids == decoder.generate(**good).token_ids
    assert outputs[3].token_ids == decoder.generate(**requests[3]).token_ids
    with pytest.raises(InvalidOptionError):  # without return_exceptions the first error is raised
        decoder.generate_batch(requests)


def test_tools_and_batch_requests_of_a_wrong_type_are_prompt_errors(tiny_checkpoint) -> None:
    from focus_integrations import FocusDecoder
    from focus_integrations.errors import PromptError
    from focus_integrations.testing.adversarial_cases import good_image

    decoder = FocusDecoder.from_pretrained(str(tiny_checkpoint("qwen2_5_vl")))
    good = {"images": [good_image(1)], "prompt": "Which?", "max_new_tokens": 2}
    for tools in (5, "f", {"type": "function"}):
        with pytest.raises(PromptError, match="tools must be a list"):  # was TypeError: 'int' is not iterable
            decoder.generate(**good, tools=tools)
    for requests in (5, "ab", good):
        with pytest.raises(PromptError, match="requests must be a list"):
            decoder.generate_batch(requests)


@pytest.mark.parametrize(
    "flags",
    [
        ["--port", "99999"],  # was accepted (uvicorn served on another port)
        ["--port", "0"],
        ["--remote-image-timeout", "nan"],  # was accepted
        ["--remote-image-timeout", "0"],
        ["--remote-image-max-bytes", "0"],
        ["--remote-image-max-redirects", "-1"],
    ],
)
def test_focus_serve_refuses_bad_port_and_image_access_flags(flags: list[str]) -> None:
    pytest.importorskip("fastapi")
    from focus_integrations.cli import build_parser
    from focus_integrations.server.cli import settings_from_args

    args = build_parser().parse_args(["serve", "--model", "m", *flags])
    with pytest.raises(InvalidOptionError):
        settings_from_args(args)
