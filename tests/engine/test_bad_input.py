"""Every bad input gets a clear error of a documented type, never a stack trace from inside torch."""

from __future__ import annotations

import functools
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from focus_integrations import (
    ContextLengthError,
    FocusDecoder,
    FocusError,
    ImageLoadError,
    InvalidOptionError,
    ModelNotFoundError,
    NoImageError,
    RemoteImageError,
    UnsupportedModelError,
)
from focus_integrations.errors import PromptError
from focus_integrations.testing.tiny_models import tiny_checkpoint


@pytest.fixture(scope="module")
def decoder() -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"))


@pytest.fixture()
def good_png(tmp_path) -> str:
    path = tmp_path / "good.png"
    Image.new("RGB", (30, 20), (200, 10, 10)).save(path)
    return str(path)


def test_no_image(decoder) -> None:
    with pytest.raises(NoImageError):
        decoder.generate(images=[], prompt="What is this?")
    with pytest.raises(NoImageError):
        decoder.generate(messages=[{"role": "user", "content": "text only"}])


def test_truncated_file(decoder, good_png, tmp_path) -> None:
    data = open(good_png, "rb").read()
    broken = tmp_path / "truncated.png"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated.png"):
        decoder.generate(images=[good_png, str(broken)], prompt="q")


def test_not_an_image(decoder, good_png, tmp_path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("this is not a png")
    with pytest.raises(ImageLoadError):
        decoder.generate(images=[good_png, str(text)], prompt="q")
    with pytest.raises(ImageLoadError):
        decoder.generate(images=[good_png, b"\x00\x01garbage"], prompt="q")
    with pytest.raises(ImageLoadError, match="not found"):
        decoder.generate(images=[good_png, "/no/such/file.png"], prompt="q")
    with pytest.raises(ImageLoadError, match="unsupported image type"):
        decoder.generate(images=[good_png, 42], prompt="q")


def test_zero_size_image(decoder, good_png) -> None:
    with pytest.raises(ImageLoadError, match="zero size"):
        decoder.generate(images=[good_png, Image.new("RGB", (0, 10))], prompt="q")
    with pytest.raises(ImageLoadError):
        decoder.generate(images=[good_png, np.zeros((0, 5, 3), dtype=np.uint8)], prompt="q")


def test_remote_url_refused_by_default(decoder, good_png) -> None:
    with pytest.raises(RemoteImageError, match="refused"):
        decoder.generate(images=[good_png, "https://example.com/cat.png"], prompt="q")


def test_prompt_longer_than_context(decoder, good_png) -> None:
    too_long = "word " * (decoder.context_length + 10)
    with pytest.raises(ContextLengthError, match="context"):
        decoder.generate(images=[good_png, good_png], prompt=too_long)


def test_too_many_images_for_context(decoder, good_png) -> None:
    big = Image.new("RGB", (56, 56))

    def tokens(n: int) -> int:
        return decoder.count_tokens([{"role": "user", "content": [{"type": "image", "image": big}] * n}])

    per_image = tokens(2) - tokens(1)
    count = decoder.context_length // per_image + 1
    with pytest.raises(ContextLengthError, match="images"):
        decoder.generate(images=[big] * count, prompt="q", mode="vanilla")
    # With FOCUS too, and before the vision tower has encoded a single image.
    inner = decoder.model.model
    encoded: list[int] = []
    original = inner.get_image_features

    @functools.wraps(original)
    def counting(*args, **kwargs):
        encoded.append(1)
        return original(*args, **kwargs)

    inner.get_image_features = counting
    try:
        with pytest.raises(ContextLengthError):
            decoder.generate(images=[big] * count, prompt="q", mode="focus")
    finally:
        del inner.get_image_features
    assert encoded == []


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "contrastive"},
        {"alpha": -1},
        {"noise": "pink"},
        {"noise_scale": 2},
        {"max_new_tokens": 0},
        {"temperature": -1},
        {"temperature": float("nan")},
        {"temperature": float("inf"), "do_sample": True},
        {"alpha": float("inf")},
        {"top_k": True},
        {"noise": ["gray"]},
        {"seed": -1},
        {"seed": 2**70},
        {"stop": 5},
        {"do_sample": "false"},
        {"noise_severity": 6},
        {"num_beams": 4},
        {"num_return_sequences": 2},
        {"eos_token_id": 10**9},
        {"chat_template_kwargs": {"tokenize": True}},
        {"max_tokens": 3, "max_new_tokens": 4},
        {"top_p": 1.5},
        {"top_k": -1},
        {"stop": [""]},
        {"seed": "x"},
        {"row_chunk_size": 0},
        {"no_such_option": 1},
    ],
)
def test_wrong_option_values(decoder, good_png, options) -> None:
    with pytest.raises(InvalidOptionError):
        decoder.generate(images=[good_png, good_png], prompt="q", **options)


def test_malformed_messages(decoder, good_png) -> None:
    with pytest.raises(InvalidOptionError, match="role"):
        decoder.generate(messages=[{"role": "robot", "content": "x"}])
    with pytest.raises(InvalidOptionError, match="only allowed in user"):
        decoder.generate(messages=[{"role": "assistant", "content": [{"type": "image", "image": good_png}]}])
    with pytest.raises(PromptError):
        decoder.generate(images=[good_png], prompt="q", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(PromptError):
        decoder.score(images=[good_png], prompt="q", candidates=[])


def test_missing_checkpoint(tmp_path) -> None:
    with pytest.raises(ModelNotFoundError):
        FocusDecoder.from_pretrained(tmp_path / "does-not-exist")
    with pytest.raises(ModelNotFoundError):
        FocusDecoder.from_pretrained("no-such-org/no-such-model-anywhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError):
        FocusDecoder.from_pretrained(tmp_path / "empty")


def test_text_only_checkpoint_is_rejected(tmp_path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=64
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    with pytest.raises(UnsupportedModelError, match="not an image-text-to-text"):
        FocusDecoder.from_pretrained(tmp_path / "llama")


def test_all_errors_share_one_base_and_builtin_types() -> None:
    for error in (ContextLengthError, ImageLoadError, InvalidOptionError, NoImageError, PromptError):
        assert issubclass(error, FocusError) and issubclass(error, ValueError)
    assert issubclass(ModelNotFoundError, OSError) and issubclass(UnsupportedModelError, TypeError)


def test_image_forms_load_identically(good_png) -> None:
    from focus_integrations.images import image_to_data_uri, load_image

    reference = np.asarray(load_image(good_png))
    raw = open(good_png, "rb").read()
    forms = [
        Image.open(io.BytesIO(raw)),
        raw,
        "file://" + good_png,
        image_to_data_uri(Image.open(good_png)),
        reference.copy(),
        reference.astype(np.float32) / 255.0,
        Image.open(good_png).convert("RGBA"),
    ]
    for form in forms:
        assert np.array_equal(np.asarray(load_image(form)), reference)


def test_cli_prints_one_line_on_error(tmp_path, good_png) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "focus_integrations.cli",
            "ask",
            "--model",
            str(tiny_checkpoint("llava")),
            "--image",
            good_png,
            "--image",
            str(tmp_path / "missing.png"),
            "what?",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip() and "Loading weights" not in line]
    assert lines == [f"focus: error: image file not found: {tmp_path / 'missing.png'}"]


def test_loading_options_dtype_and_device_map() -> None:
    import torch

    decoder = FocusDecoder.from_pretrained(tiny_checkpoint("llava"), device_map="cpu", dtype="bfloat16")
    assert decoder.model.dtype == torch.bfloat16
    assert decoder.generate(images=[Image.new("RGB", (32, 32))], prompt="q", max_new_tokens=2).token_ids
    with pytest.raises(InvalidOptionError, match="dtype"):
        FocusDecoder.from_pretrained(tiny_checkpoint("llava"), dtype="float8")
