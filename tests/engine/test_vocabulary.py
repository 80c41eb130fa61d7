"""One option vocabulary for every entry point, and chat-template options from every engine method."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from PIL import Image

from focus_integrations import FocusDecoder, InvalidOptionError
from focus_integrations.errors import PromptError
from focus_integrations.options import DecodingOptions
from focus_integrations.testing.tiny_models import tiny_checkpoint
from focus_integrations.vocabulary import combine_layers, decoding_layer


def test_vocabulary_rules() -> None:
    assert decoding_layer({"temperature": 0}) == {"do_sample": False}
    assert decoding_layer({"temperature": 0.7}) == {"temperature": 0.7, "do_sample": True}
    assert decoding_layer({"temperature": 0.7, "do_sample": False}) == {
        "temperature": 0.7,
        "do_sample": False,
    }
    assert (
        decoding_layer({"max_tokens": 5})
        == decoding_layer({"max_completion_tokens": 5})
        == {"max_new_tokens": 5}
    )
    assert decoding_layer({"alpha": None, "stop_sequences": "END"}) == {"stop": "END"}
    assert DecodingOptions.from_layers(decoding_layer({"stop": "END"})).stop == (
        "END",
    )  # one stop, not E, N, D
    # A higher layer's temperature=0 is greedy even where a lower one samples.
    merged = combine_layers({"temperature": 0.8}, {"temperature": 0})
    assert DecodingOptions.from_layers(merged).do_sample is False
    with pytest.raises(InvalidOptionError, match="loading option"):
        decoding_layer({"device": "cpu"})
    with pytest.raises(InvalidOptionError, match="set the same option differently"):
        decoding_layer({"max_tokens": 3, "max_new_tokens": 4})
    with pytest.raises(InvalidOptionError, match="temperature"):
        decoding_layer({"temperature": float("nan")})


@pytest.fixture(scope="module")
def qwen() -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"))


def _messages() -> list[dict]:
    images = [Image.new("RGB", (30, 20), c) for c in ((200, 0, 0), (0, 0, 200))]
    content = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": "Which?"}]
    return [{"role": "user", "content": content}]


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_add_vision_id_labels_the_pictures(family: str) -> None:
    decoder = FocusDecoder.from_pretrained(tiny_checkpoint(family))
    plain = decoder.render_prompt(_messages())
    labelled = decoder.render_prompt(_messages(), chat_template_kwargs={"add_vision_id": True})
    assert "Picture" not in plain
    assert "Picture 1: <|vision_start|>" in labelled and "Picture 2: <|vision_start|>" in labelled


def test_chat_template_kwargs_reach_every_engine_method(qwen: FocusDecoder) -> None:
    kwargs = {"chat_template_kwargs": {"add_vision_id": True}}
    extra = len(qwen.tokenizer("Picture 1: Picture 2: ", add_special_tokens=False)["input_ids"])
    plain, labelled = qwen.count_tokens(_messages()), qwen.count_tokens(_messages(), **kwargs)
    assert labelled == plain + extra
    out = qwen.generate(messages=_messages(), max_new_tokens=1, seed=0, **kwargs)
    assert out.usage.input_tokens == labelled and out.settings["chat_template_kwargs"] == {
        "add_vision_id": True
    }
    streamed = qwen.stream(messages=_messages(), max_new_tokens=1, seed=0, **kwargs)
    list(streamed)
    assert streamed.output.usage.input_tokens == labelled
    scores = [qwen.score(messages=_messages(), candidates=["A"], seed=0, **k)[0] for k in ({}, kwargs)]
    assert scores[0] != scores[1]  # the labels are in the scored prompt
    # As a decoder default, merged key by key with a call's.
    labelled_decoder = FocusDecoder(qwen.model, qwen.processor, chat_template_kwargs={"add_vision_id": True})
    assert labelled_decoder.count_tokens(_messages()) == labelled
    merged = labelled_decoder.resolve_options(chat_template_kwargs={"enable_thinking": False})
    assert merged.chat_template_kwargs == {"add_vision_id": True, "enable_thinking": False}


def test_an_enable_thinking_style_flag_reaches_the_template(qwen: FocusDecoder) -> None:
    processor = copy.copy(qwen.processor)
    processor.chat_template = (
        "{%- if enable_thinking is defined and not enable_thinking -%}<no-think>{%- endif -%}"
        + qwen.processor.chat_template
    )
    decoder = FocusDecoder(qwen.model, processor)
    assert "<no-think>" not in decoder.render_prompt(_messages())
    assert decoder.render_prompt(_messages(), chat_template_kwargs={"enable_thinking": False}).startswith(
        "<no-think>"
    )


def test_engine_arguments_of_the_wrong_type_are_clear_errors(qwen: FocusDecoder) -> None:
    with pytest.raises(PromptError, match="candidates"):
        qwen.score(messages=_messages(), candidates=["A", 5])
    with pytest.raises(PromptError, match="messages"):
        qwen.count_tokens(5)
    with pytest.raises(InvalidOptionError, match="require_images"):
        qwen.generate(messages=_messages(), require_images="no")
    with pytest.raises(InvalidOptionError, match="chat_template_kwargs"):
        qwen.render_prompt(_messages(), chat_template_kwargs=["add_vision_id"])


def test_cli_takes_the_vocabulary_and_chat_template_kwargs(tmp_path) -> None:
    paths = []
    for index, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        path = tmp_path / f"img{index}.png"
        Image.new("RGB", (32, 28), colour).save(path)
        paths += ["--image", str(path)]
    base = [
        sys.executable,
        "-m",
        "focus_integrations.cli",
        "ask",
        "--model",
        str(tiny_checkpoint("qwen2_5_vl")),
    ]
    ok = subprocess.run(
        [
            *base,
            *paths,
            "--temperature",
            "0",
            "--max-new-tokens",
            "2",
            "--attn-implementation",
            "eager",
            "--chat-template-kwargs",
            '{"add_vision_id": true}',
            "--generate-kwargs",
            '{"min_new_tokens": 2}',
            "q",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert ok.returncode == 0, ok.stderr
    assert "2 tokens" in ok.stderr  # min_new_tokens=2 with max 2
    bad = subprocess.run(
        [*base, *paths, "--chat-template-kwargs", "[1]", "q"], capture_output=True, text=True, timeout=180
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "JSON object" in bad.stderr


def test_every_option_value_is_valid_or_a_documented_error() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from focus_integrations.options import FIELDS

    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=3)), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )

    @settings(max_examples=300, deadline=None, database=None)
    @given(
        st.dictionaries(
            st.sampled_from([*FIELDS, "max_tokens", "temperature", "num_beams"]), values, max_size=3
        )
    )
    def check(options: dict) -> None:
        try:
            resolved = DecodingOptions.from_layers(decoding_layer(options))
        except InvalidOptionError:
            return
        assert isinstance(resolved, DecodingOptions)
        assert resolved.as_settings()["mode"] in ("focus", "vanilla", "vcd")

    check()
