"""The tiny offline checkpoints: they load, run, keep token layouts under noise, and cache safely."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModelForImageTextToText

from focus_integrations.errors import InvalidOptionError
from focus_integrations.processors import load_processor
from focus_integrations.testing import FAMILIES, build_model_and_processor, tiny_checkpoint, tiny_models

# Odd sizes and non-RGB modes: the token count of an image must depend on its size only.
IMAGE_SPECS = [((37, 50), "RGB"), ((61, 23), "L"), ((45, 45), "RGBA")]


def _images(seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    images = []
    for (width, height), mode in IMAGE_SPECS:
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        images.append(Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode))
    return images


def _noise_like(image: Image.Image, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = image.size
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def _conversation(n_images: int) -> list[dict]:
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": "Which one is red?"}]
    return [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": content},
    ]


def _encode(processor, images: list[Image.Image]) -> dict[str, torch.Tensor]:
    text = processor.apply_chat_template(
        _conversation(len(images)), add_generation_prompt=True, tokenize=False
    )
    # Templates that write BOS themselves (Gemma, Idefics3) must not get a second one from the tokenizer.
    bos = processor.tokenizer.bos_token
    add_special_tokens = not (bos and text.startswith(bos))
    return processor(text=[text], images=[images], return_tensors="pt", add_special_tokens=add_special_tokens)


def _image_token_id(config) -> int:
    value = getattr(config, "image_token_id", None)
    return value if value is not None else config.image_token_index


@pytest.mark.parametrize("family", FAMILIES)
def test_reload_gives_identical_processor_outputs_and_logits(family: str, tmp_path: Path) -> None:
    model, processor = build_model_and_processor(family)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)

    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    reloaded_processor = load_processor(tmp_path)

    images = _images(seed=1)
    inputs = _encode(processor, images)
    reloaded_inputs = _encode(reloaded_processor, images)
    assert inputs.keys() == reloaded_inputs.keys()
    for key in inputs:
        assert torch.equal(torch.as_tensor(inputs[key]), torch.as_tensor(reloaded_inputs[key])), key

    # The forward itself checks that the image features fill exactly the image-token positions.
    image_positions = inputs["input_ids"] == _image_token_id(model.config)
    assert image_positions.sum() > 0
    with torch.no_grad():
        logits = model(**inputs).logits
        reloaded_logits = reloaded(**reloaded_inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], len(processor.tokenizer))
    assert torch.isfinite(logits).all()
    assert torch.equal(logits, reloaded_logits)

    # Images must matter, or every FOCUS test on these models would be vacuous.
    other = [_noise_like(image, seed=20 + i) for i, image in enumerate(images)]
    with torch.no_grad():
        other_logits = model(**_encode(processor, other)).logits
    assert (other_logits[0, -1] - logits[0, -1]).abs().max() > 1e-3
    assert not any(p.ndim >= 2 and not p.any() for p in model.parameters()), "a weight matrix is all zero"


@pytest.mark.parametrize("family", FAMILIES)
def test_token_ids_agree_between_tokenizer_config_and_generation_config(family: str) -> None:
    model, processor = build_model_and_processor(family)
    tokenizer = processor.tokenizer
    text_config = model.config.get_text_config()
    assert text_config.vocab_size == len(tokenizer)
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id is not None
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id is not None
    assert text_config.eos_token_id == tokenizer.eos_token_id
    assert text_config.bos_token_id == tokenizer.bos_token_id
    image_token_id = _image_token_id(model.config)
    assert 0 <= image_token_id < len(tokenizer)
    assert tokenizer.convert_ids_to_tokens(image_token_id) in tokenizer.all_special_tokens
    # Every byte is a token: any text round-trips.
    text = "Zebra, 42 naïve ünïcode ✓"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


@pytest.mark.parametrize("family", FAMILIES)
def test_noise_images_of_the_same_size_keep_input_ids(family: str) -> None:
    processor = load_processor(tiny_checkpoint(family))
    image_token_id = _image_token_id(AutoConfig.from_pretrained(tiny_checkpoint(family)))

    clean = _images(seed=2)
    noise = [_noise_like(image, seed=10 + i) for i, image in enumerate(clean)]
    mixed = [clean[0], noise[1], noise[2]]
    clean_inputs = _encode(processor, clean)
    for variant in (noise, mixed):
        variant_inputs = _encode(processor, variant)
        assert torch.equal(clean_inputs["input_ids"], variant_inputs["input_ids"])
        assert torch.equal(clean_inputs["attention_mask"], variant_inputs["attention_mask"])
        for key, value in clean_inputs.items():
            assert torch.as_tensor(variant_inputs[key]).shape == torch.as_tensor(value).shape, key
    assert not torch.equal(clean_inputs["pixel_values"], _encode(processor, noise)["pixel_values"])

    # "A handful of tokens" per image keeps every test fast.
    n_image_tokens = int((clean_inputs["input_ids"] == image_token_id).sum())
    assert 0 < n_image_tokens <= 64 * len(clean)


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_template_renders_turns_strings_and_generation_prompt(family: str) -> None:
    processor = load_processor(tiny_checkpoint(family))
    messages = [
        {"role": "system", "content": "Sys prompt."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "First question?"}]},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Second question?"},
    ]
    closed = processor.apply_chat_template(messages, tokenize=False)
    open_ = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert open_.startswith(closed) and len(open_) > len(closed)
    positions = [
        closed.index(part) for part in ("Sys prompt.", "First question?", "First answer.", "Second question?")
    ]
    assert positions == sorted(positions)
    # Exactly one image placeholder, which the processor expands for one image.
    inputs = processor(
        text=[open_], images=[_images(seed=3)[:1]], return_tensors="pt", add_special_tokens=False
    )
    assert inputs["input_ids"].shape[1] > len(
        processor.tokenizer(open_, add_special_tokens=False)["input_ids"]
    )


QWEN_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("family", QWEN_FAMILIES)
def test_qwen_template_renders_tools_tool_calls_and_tool_results(family: str) -> None:
    model, processor = build_model_and_processor(family)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Weather there?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "a",
            "content": [{"type": "text", "text": "sunny"}, {"type": "image"}],
        },
        {"role": "tool", "tool_call_id": "b", "content": "rain"},
    ]
    text = processor.apply_chat_template(
        messages, tools=[WEATHER_TOOL], add_generation_prompt=True, tokenize=False
    )

    system_turn = text.split("<|im_end|>")[0]
    assert system_turn.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(WEATHER_TOOL) + "\n</tools>" in system_turn
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>' in text
    # Consecutive tool results share ONE user turn; the image inside a tool result is a real image slot.
    tool_turn = text.split("<|im_start|>user")[2].split("<|im_end|>")[0]
    assert tool_turn.count("<tool_response>") == 2
    assert "<|vision_start|><|image_pad|><|vision_end|>" in tool_turn
    assert text.endswith("<|im_start|>assistant\n")
    assert "Be brief." not in text.split("<|im_end|>", 1)[1]  # the system turn is not repeated

    inputs = processor(text=[text], images=[_images(seed=4)[:2]], return_tensors="pt")
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()

    # Without tools the system turn is plain; Qwen2/2.5 add their default system prompt, Qwen3 does not.
    plain = processor.apply_chat_template(messages[1:2], add_generation_prompt=True, tokenize=False)
    assert "# Tools" not in plain
    assert plain.startswith("<|im_start|>system\nYou are a helpful assistant.") == (family != "qwen3_vl")


def test_builds_are_deterministic_and_leave_the_global_rng_alone() -> None:
    rng_state = torch.random.get_rng_state()
    first, _ = build_model_and_processor("llava", seed=0)
    again, _ = build_model_and_processor("llava", seed=0)
    other, _ = build_model_and_processor("llava", seed=1)
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    first_state, again_state, other_state = first.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(first_state[k], again_state[k]) for k in first_state)
    assert any(not torch.equal(first_state[k], other_state[k]) for k in first_state)


def test_bench_size_is_a_realistic_25m_qwen2_5_vl() -> None:
    model, processor = build_model_and_processor("qwen2_5_vl", size="bench")
    n_params = sum(p.numel() for p in model.parameters())
    assert 20e6 < n_params < 30e6
    assert model.config.text_config.hidden_size == 512
    image = Image.fromarray(np.random.default_rng(5).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    inputs = processor(
        text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[[image]], return_tensors="pt"
    )
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 64


@pytest.mark.parametrize(
    ("family", "size"), [("no_such_family", "tiny"), ("qwen2_5_vl", "huge"), ("gemma3", "bench")]
)
def test_unknown_family_or_size_is_a_clear_error(family: str, size: str) -> None:
    with pytest.raises(InvalidOptionError, match=family if family == "no_such_family" else size):
        build_model_and_processor(family, size=size)
    with pytest.raises(InvalidOptionError):
        tiny_checkpoint(family, size=size)


def test_tiny_checkpoint_builds_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOCUS_TINY_CACHE", str(tmp_path))
    root = tmp_path / tiny_models._versions_tag()
    prefix = f".llava-v{tiny_models.RECIPE_VERSION}-"
    stale, fresh = root / f"{prefix}killed", root / f"{prefix}building"
    for leftover in (stale, fresh):
        leftover.mkdir(parents=True)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))  # left by a process killed two hours ago

    path = tiny_checkpoint("llava")
    assert not stale.exists() and fresh.exists()  # a recent one may still be another process's build
    shutil.rmtree(fresh)
    assert path.is_relative_to(tmp_path) and f"v{tiny_models.RECIPE_VERSION}" in path.name
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()

    def must_not_build(*args, **kwargs):
        raise AssertionError("rebuilt a cached checkpoint")

    monkeypatch.setattr(tiny_models, "build_checkpoint", must_not_build)
    assert tiny_checkpoint("llava") == path
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no staging folders left behind


def test_tiny_checkpoint_race_loser_keeps_the_winners_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOCUS_TINY_CACHE", str(tmp_path))
    real_build = tiny_models.build_checkpoint
    target_holder: dict[str, Path] = {}

    def build_while_another_process_wins(family, staging, **kwargs):
        real_build(family, staging, **kwargs)
        # Another process finishes first and renames its own build into place.
        winner = Path(staging).parent / f"{family}-v{tiny_models.RECIPE_VERSION}"
        real_build(family, winner, seed=7)
        target_holder["winner"] = winner
        return Path(staging)

    monkeypatch.setattr(tiny_models, "build_checkpoint", build_while_another_process_wins)
    path = tiny_checkpoint("gemma3")
    assert path == target_holder["winner"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert AutoModelForImageTextToText.from_pretrained(path) is not None


def test_failed_build_leaves_nothing_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOCUS_TINY_CACHE", str(tmp_path))

    def broken_build(family, staging, **kwargs):
        (Path(staging) / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiny_models, "build_checkpoint", broken_build)
    with pytest.raises(RuntimeError, match="disk full"):
        tiny_checkpoint("llava")
    assert not [p for p in tmp_path.rglob("*") if "llava" in p.name]  # neither target nor staging


def test_cache_dir_defaults_to_the_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOCUS_TINY_CACHE", raising=False)
    assert tiny_models.tiny_cache_dir() == Path.home() / ".cache" / "focus-integrations" / "tiny"
    monkeypatch.setenv("FOCUS_TINY_CACHE", os.fspath(Path("/tmp/elsewhere")))
    assert tiny_models.tiny_cache_dir() == Path("/tmp/elsewhere")
