"""The checkpoint's generation_config is the default, as in ``model.generate``: vanilla decoding gives the tokens
and the stop ``model.generate`` gives, for every family; and the layers stack in the documented order."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import GenerationConfig

from focus_integrations import FocusDecoder, InvalidOptionError
from focus_integrations.request import wants_special_tokens
from focus_integrations.testing.tiny_models import FAMILIES, tiny_checkpoint

PROMPT = "Which image shows the red shape?"


def _images(seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in ((40, 30), (33, 47))]


def _generate(decoder: FocusDecoder, images, **kwargs) -> list[int]:
    """What ``model.generate`` answers for the prompt the engine renders (image placeholders suppressed, as the
    engine never generates them), with the model's own generation_config unless ``kwargs`` override it."""
    content = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": PROMPT}]
    messages = [{"role": "user", "content": content}]
    text = decoder.render_prompt(messages)
    inputs = decoder.processor(
        text=[text],
        images=[images],
        return_tensors="pt",
        add_special_tokens=wants_special_tokens(decoder.tokenizer, text),
    )
    suppress = list(decoder.banned_token_ids) or None
    output = decoder.model.generate(**inputs, suppress_tokens=suppress, **kwargs)
    return output[0, inputs["input_ids"].shape[1] :].tolist()


def _with_config(decoder: FocusDecoder, **config) -> FocusDecoder:
    decoder.model.generation_config = GenerationConfig(**config)
    return FocusDecoder(decoder.model, decoder.processor)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def sampled_checkpoint(family, tmp_path_factory):
    """A copy of the family's tiny checkpoint whose generation_config.json samples (nearly greedily), with a
    repetition penalty, 3 tokens at most, and a second EOS id: the token the answer would have second."""
    folder = tmp_path_factory.mktemp(family) / "ckpt"
    shutil.copytree(tiny_checkpoint(family), folder)
    path = folder / "generation_config.json"
    config = json.loads(path.read_text())
    config |= {
        "max_new_tokens": 3,
        "do_sample": True,
        "temperature": 0.05,
        "top_k": 1,
        "repetition_penalty": 1.05,
    }
    path.write_text(json.dumps(config))
    decoder = FocusDecoder.from_pretrained(folder)
    second = _generate(decoder, _images())[1]
    eos = config["eos_token_id"]
    config["eos_token_id"] = [*(eos if isinstance(eos, list) else [eos]), second]
    path.write_text(json.dumps(config))
    return folder


def test_generation_config_json_decodes_like_model_generate(sampled_checkpoint) -> None:
    decoder = FocusDecoder.from_pretrained(sampled_checkpoint)
    out = decoder.generate(images=_images(), prompt=PROMPT, mode="vanilla")
    expected = _generate(decoder, _images())
    assert out.token_ids == expected
    eos_ids = json.loads((sampled_checkpoint / "generation_config.json").read_text())["eos_token_id"]
    assert out.finish_reason == "stop" and out.token_ids[-1] in eos_ids  # the config's EOS ids stop it
    assert len(out.token_ids) <= 2
    settings = out.settings
    assert (settings["do_sample"], settings["temperature"], settings["top_k"]) == (True, 0.05, 1)
    assert settings["repetition_penalty"] == 1.05 and settings["max_new_tokens"] == 3
    assert settings["sources"]["repetition_penalty"] == "generation_config"
    # The same checkpoint in FOCUS mode keeps the config's settings on the combined logits.
    focus = decoder.generate(images=_images(), prompt=PROMPT, seed=0)
    assert focus.settings["rule"] == "focus" and focus.usage.output_tokens <= 3


def test_min_new_tokens_and_no_repeat_ngram_decode_like_model_generate(sampled_checkpoint) -> None:
    decoder = FocusDecoder.from_pretrained(sampled_checkpoint)
    greedy = _generate(
        decoder, _images(), do_sample=False, max_new_tokens=6, min_new_tokens=6, repetition_penalty=1.0
    )
    eos = decoder.tokenizer.eos_token_id
    config = dict(
        max_new_tokens=7,
        min_new_tokens=4,
        no_repeat_ngram_size=2,
        eos_token_id=[eos, greedy[1]],  # forbidden for 4 tokens by min_new_tokens
        pad_token_id=decoder.tokenizer.pad_token_id,
    )
    plain = _with_config(decoder, **config)
    out = plain.generate(images=_images(), prompt=PROMPT, mode="vanilla")
    assert out.token_ids == _generate(plain, _images())
    assert len(out.token_ids) >= 4 and greedy[1] not in out.token_ids[:4]


def test_sampling_with_top_p_decodes_like_model_generate(sampled_checkpoint) -> None:
    decoder = _with_config(
        FocusDecoder.from_pretrained(sampled_checkpoint),
        max_new_tokens=6,
        do_sample=True,
        temperature=0.7,
        top_k=20,
        top_p=0.9,
        eos_token_id=0,
    )
    out = decoder.generate(images=_images(), prompt=PROMPT, mode="vanilla", seed=11)
    torch.manual_seed(11)  # generate() samples from the global generator; the engine from one seeded the same
    assert out.token_ids == _generate(decoder, _images())


def test_precedence_call_defaults_focus_config_generation_config(tmp_path) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint("llava"), folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config |= {"max_new_tokens": 3, "top_k": 7, "temperature": 0.5, "do_sample": True}
    (folder / "generation_config.json").write_text(json.dumps(config))
    (folder / "focus_config.json").write_text(json.dumps({"alpha": 0.7, "top_k": 9}))
    decoder = FocusDecoder.from_pretrained(folder, alpha=0.4, max_tokens=5)
    options = decoder.resolve_options(max_new_tokens=None, alpha=None, top_k=None, temperature=0.9)
    assert options.top_k == 9  # focus_config.json over generation_config.json
    assert options.alpha == 0.4  # decoder defaults over focus_config.json; None at the call changes nothing
    assert options.max_new_tokens == 5  # max_tokens is max_new_tokens
    assert options.temperature == 0.9 and options.do_sample  # the call over everything
    assert options.top_p == 1.0 and options.repetition_penalty == 1.0  # library (transformers) defaults
    out = decoder.generate(images=_images(), prompt=PROMPT, temperature=0, seed=0)
    assert out.settings["do_sample"] is False  # temperature=0 is greedy
    sources = out.settings["sources"]
    assert sources["max_new_tokens"] == "decoder defaults" and sources["alpha"] == "decoder defaults"
    assert sources["top_k"] == "focus_config.json" and sources["do_sample"] == "call"
    assert sources["temperature"] == "generation_config" and "top_p" not in sources


def test_generation_config_argument_and_meaningless_generate_options() -> None:
    decoder = FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_vl"))
    options = decoder.resolve_options(generation_config=GenerationConfig(max_new_tokens=2, top_k=3), top_k=4)
    assert (options.max_new_tokens, options.top_k) == (2, 4)  # the names beside it win
    assert decoder.resolve_options(num_beams=1, num_return_sequences=1).max_new_tokens == 256
    for bad in (
        {"num_beams": 4},
        {"num_return_sequences": 2},
        {"generation_config": GenerationConfig(num_beams=3)},
    ):
        with pytest.raises(InvalidOptionError, match="no meaning"):
            decoder.resolve_options(**bad)
    with pytest.raises(InvalidOptionError, match="loading options: .*attn_implementation"):
        decoder.resolve_options(temprature=0.5)


def test_a_checkpoint_config_with_beams_is_reported_not_fatal(tmp_path) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint("llava"), folder)
    config = json.loads((folder / "generation_config.json").read_text()) | {
        "num_beams": 4,
        "max_new_tokens": 2,
    }
    (folder / "generation_config.json").write_text(json.dumps(config))
    decoder = FocusDecoder.from_pretrained(folder)
    assert decoder.ignored_generation_config == {"num_beams": 4}
    assert decoder.generate(images=_images(), prompt=PROMPT).usage.output_tokens <= 2
