"""Image-only processors: load without torchvision, keep every saved kwarg, save as the stock class."""

from __future__ import annotations

import inspect
import json
import shutil
import time
from pathlib import Path

import pytest
import transformers
from PIL import Image
from transformers.utils import is_torchvision_available

from focus_integrations.errors import ModelNotFoundError, UnsupportedModelError
from focus_integrations.processors import (
    VideoNotSupportedError,
    image_only_processor_class,
    image_only_processor_names,
    load_processor,
)
from focus_integrations.testing import FAMILIES, build_model_and_processor, tiny_checkpoint

VIDEO_SLOT_PROCESSORS = (
    "Qwen2VLProcessor",
    "Qwen2_5_VLProcessor",
    "Qwen3VLProcessor",
    "LlavaOnevisionProcessor",
    "InternVLProcessor",
    "SmolVLMProcessor",
)
SUB_PROCESSORS = {"image_processor", "tokenizer", "video_processor"}


def _named_params(init) -> list[str]:
    return [
        name
        for name, p in inspect.signature(init).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]


def test_the_table_covers_exactly_the_processors_with_a_video_slot() -> None:
    assert set(image_only_processor_names()) == set(VIDEO_SLOT_PROCESSORS)
    for name in VIDEO_SLOT_PROCESSORS:
        assert "video_processor" in _named_params(getattr(transformers, name).__init__)
    for name in ("LlavaProcessor", "Gemma3Processor", "Idefics3Processor", "NoSuchProcessor", ""):
        assert image_only_processor_class(name) is None


@pytest.mark.parametrize("name", VIDEO_SLOT_PROCESSORS)
def test_image_only_class_keeps_every_named_parameter_but_the_video_slot(name: str) -> None:
    base = getattr(transformers, name)
    cls = image_only_processor_class(name)
    assert cls is not None and issubclass(cls, base) and cls is not base
    assert image_only_processor_class(name) is cls  # built once
    assert image_only_processor_class(cls.__name__) is cls  # its own name resolves too

    expected = [p for p in _named_params(base.__init__) if p != "video_processor"]
    assert _named_params(cls.__init__) == expected
    # What from_args_and_dict reads to decide which saved kwargs to pass back:
    code = cls.__init__.__code__
    assert list(code.co_varnames[1 : code.co_argcount]) == expected
    base_params = inspect.signature(base.__init__).parameters
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name != "self":
            assert param.default == base_params[param.name].default, param.name
    assert cls.get_attributes() == ["image_processor", "tokenizer"]


@pytest.mark.parametrize("family", FAMILIES)
def test_load_processor_loads_every_family_and_saved_kwargs_survive(family: str) -> None:
    _, built = build_model_and_processor(family)
    folder = tiny_checkpoint(family)
    loaded = load_processor(folder)

    saved_class = json.loads((folder / "processor_config.json").read_text())["processor_class"]
    stock = getattr(transformers, saved_class)
    assert isinstance(loaded, stock)  # the image-only classes save under the stock name
    if saved_class in VIDEO_SLOT_PROCESSORS and not is_torchvision_available():
        assert type(loaded) is image_only_processor_class(saved_class)
    else:
        assert type(loaded) is stock

    assert loaded.chat_template == built.chat_template and "{%" in loaded.chat_template
    # Every named kwarg of the processor comes back as built; at least one of them is not the class default,
    # so a loader that dropped saved kwargs would fail here.
    kwargs = [p for p in _named_params(stock.__init__) if p not in SUB_PROCESSORS | {"chat_template"}]
    defaults = {n: p.default for n, p in inspect.signature(stock.__init__).parameters.items()}
    for name in kwargs:
        assert getattr(loaded, name) == getattr(built, name), name
    non_default = [n for n in kwargs if getattr(built, n) != defaults[n]]
    if family not in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):  # Qwen processors take no extra kwargs
        assert non_default, f"{family}: no processor kwarg differs from its default"
    assert loaded.image_processor.to_dict() == built.image_processor.to_dict()


def test_a_star_args_wrapper_would_lose_saved_kwargs(tmp_path: Path) -> None:
    # The trap the generated signatures avoid: from_args_and_dict only passes back the saved kwargs it finds
    # in __init__'s co_varnames, so a **kwargs pass-through silently resets image_seq_length to its default.
    base = transformers.InternVLProcessor

    class PassThrough(base):
        def __init__(self, image_processor=None, tokenizer=None, **kwargs):
            base.__init__(self, image_processor, tokenizer, None, **kwargs)

    _, built = build_model_and_processor("internvl")
    built.save_pretrained(tmp_path)
    assert PassThrough.from_pretrained(tmp_path).image_seq_length == 256 != built.image_seq_length
    assert image_only_processor_class("InternVLProcessor").from_pretrained(tmp_path).image_seq_length == 16


def test_image_only_processor_save_load_round_trip_is_stable(tmp_path: Path) -> None:
    first = load_processor(tiny_checkpoint("llava_onevision"))
    first.save_pretrained(tmp_path / "a")
    second = load_processor(tmp_path / "a")
    second.save_pretrained(tmp_path / "b")
    config_a = json.loads((tmp_path / "a" / "processor_config.json").read_text())
    config_b = json.loads((tmp_path / "b" / "processor_config.json").read_text())
    assert config_a == config_b and config_a["processor_class"] == "LlavaOnevisionProcessor"
    assert (tmp_path / "b" / "chat_template.jinja").read_text() == first.chat_template


def test_smolvlm_chat_template_works_without_a_video_processor() -> None:
    processor = load_processor(tiny_checkpoint("smolvlm"))
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>User:<image>Hi<end_of_utterance>\nAssistant:"
    encoded = processor.apply_chat_template(
        [[{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (40, 30))}]}]],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    assert "pixel_values" in encoded
    if type(processor) is image_only_processor_class("SmolVLMProcessor"):
        video = [{"role": "user", "content": [{"type": "video", "path": "clip.mp4"}]}]
        with pytest.raises(VideoNotSupportedError):
            processor.apply_chat_template(video, tokenize=False)


def test_hub_id_loads_from_the_local_cache(tmp_path: Path) -> None:
    # The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--tiny-org--tiny-qwen2_5_vl"
    shutil.copytree(tiny_checkpoint("qwen2_5_vl"), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)

    processor = load_processor("tiny-org/tiny-qwen2_5_vl", cache_dir=tmp_path)
    assert isinstance(processor, transformers.Qwen2_5_VLProcessor)
    assert processor.chat_template == load_processor(tiny_checkpoint("qwen2_5_vl")).chat_template


def test_missing_checkpoints_raise_model_not_found_quickly(tmp_path: Path) -> None:
    for missing in (tmp_path / "does-not-exist", str(tmp_path / "does-not-exist"), "./no/such/folder"):
        with pytest.raises(ModelNotFoundError, match="no checkpoint folder"):
            load_processor(missing)


def test_uncached_hub_id_fails_fast_without_asking_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants
    import huggingface_hub.file_download

    # Even with offline mode off, a hub id is looked up in the cache only (unless local_files_only=False).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

    def no_network(*args, **kwargs):
        raise AssertionError("asked the Hub")

    monkeypatch.setattr(huggingface_hub.file_download, "get_hf_file_metadata", no_network)
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="no-such-org/no-such-model"):
        load_processor("no-such-org/no-such-model", cache_dir=tmp_path)
    assert time.monotonic() - started < 10


def test_text_only_checkpoint_is_unsupported(tmp_path: Path) -> None:
    _, processor = build_model_and_processor("llava")
    processor.tokenizer.save_pretrained(tmp_path)  # a tokenizer and nothing else
    with pytest.raises(UnsupportedModelError, match="no image processor"):
        load_processor(tmp_path)


def test_broken_processor_config_is_unsupported_not_a_deep_traceback(tmp_path: Path) -> None:
    shutil.copytree(tiny_checkpoint("internvl"), tmp_path, dirs_exist_ok=True)
    config_path = tmp_path / "processor_config.json"
    config = json.loads(config_path.read_text())
    del config["image_processor"]["image_processor_type"]
    config["image_processor"]["size"] = "not a size"
    config_path.write_text(json.dumps(config))
    with pytest.raises((UnsupportedModelError, ModelNotFoundError)) as raised:
        load_processor(tmp_path)
    assert "internvl" in str(raised.value).lower() or str(tmp_path) in str(raised.value)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "internvl"])
def test_image_only_processors_refuse_videos_instead_of_dropping_them(family: str) -> None:
    if is_torchvision_available():
        pytest.skip("torchvision is installed: the stock processor handles videos")
    processor = load_processor(tiny_checkpoint(family))
    frames = [Image.new("RGB", (32, 32))] * 4
    with pytest.raises(VideoNotSupportedError):
        processor(text=["a video"], videos=[frames])
    with pytest.raises(VideoNotSupportedError):
        processor(None, ["a video"], [frames])  # positional, as ProcessorMixin.__call__ allows
    assert processor(text=["no video"], return_tensors="pt")["input_ids"].shape[0] == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_template_tokenize_path_matches_render_then_process(family: str) -> None:
    processor = load_processor(tiny_checkpoint(family))
    images = [Image.new("RGB", (40, 30), "red"), Image.new("RGB", (23, 51), "blue")]
    content = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": "Same?"}]
    messages = [{"role": "user", "content": content}]
    direct = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    # The rule callers must follow: let the tokenizer add BOS only when the template did not write it
    # (Gemma's and Idefics3's templates do; LLaVA's relies on the tokenizer).
    bos = processor.tokenizer.bos_token
    add_special_tokens = not (bos and text.startswith(bos))
    manual = processor(
        text=[text], images=[images], return_tensors="pt", add_special_tokens=add_special_tokens
    )
    assert direct["input_ids"].tolist() == manual["input_ids"].tolist()
    if bos is not None:
        assert direct["input_ids"][0].tolist().count(processor.tokenizer.bos_token_id) <= 1
