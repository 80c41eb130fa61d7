"""Loading options reach the loaded model and processor; bad ones are clear, documented errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from focus_integrations import FocusDecoder
from focus_integrations.errors import CheckpointError, InvalidOptionError
from focus_integrations.testing.tiny_models import tiny_checkpoint


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_attn_implementation_reaches_the_model(implementation: str) -> None:
    decoder = FocusDecoder.from_pretrained(tiny_checkpoint("llava"), attn_implementation=implementation)
    assert decoder.model.config._attn_implementation == implementation


def test_dtype_and_torch_dtype() -> None:
    assert (
        FocusDecoder.from_pretrained(tiny_checkpoint("llava"), torch_dtype="bfloat16").model.dtype
        == torch.bfloat16
    )
    with pytest.raises(InvalidOptionError, match="disagree"):
        FocusDecoder.from_pretrained(tiny_checkpoint("llava"), dtype="float32", torch_dtype="bfloat16")


def test_processor_kwargs_reach_the_processor() -> None:
    decoder = FocusDecoder.from_pretrained(
        tiny_checkpoint("qwen2_vl"), processor_kwargs={"max_pixels": 28 * 28 * 8}
    )
    assert decoder.processor.image_processor.size["longest_edge"] == 28 * 28 * 8


def test_hub_arguments_reach_every_from_pretrained(monkeypatch) -> None:
    import transformers

    seen: dict[str, list[dict]] = {"model": [], "processor": []}
    real_model, real_processor = (
        transformers.AutoModelForImageTextToText.from_pretrained,
        transformers.AutoProcessor.from_pretrained,
    )

    def spy(kind, real):
        def call(*args, **kwargs):
            seen[kind].append(dict(kwargs))
            kwargs.pop("token", None)  # a local folder needs no token; the point is that it was passed
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", spy("model", real_model))
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", spy("processor", real_processor))
    FocusDecoder.from_pretrained(
        tiny_checkpoint("llava"),
        token="hf_not_a_real_token",
        low_cpu_mem_usage=True,
        model_kwargs={"key_mapping": None},
    )
    (model_kwargs,) = seen["model"]
    assert model_kwargs["token"] == "hf_not_a_real_token" and model_kwargs["low_cpu_mem_usage"] is True
    assert "key_mapping" in model_kwargs
    assert seen["processor"][0]["token"] == "hf_not_a_real_token"


def _hub_cache(tmp_path, revisions: dict[str, dict]) -> str:
    """A Hugging Face hub cache holding repo org/tiny-llava at several commits (refs -> snapshot folders)."""
    repo = tmp_path / "cache" / "models--org--tiny-llava"
    for index, (ref, focus_config) in enumerate(revisions.items()):
        commit = f"{index + 1:040x}"
        snapshot = repo / "snapshots" / commit
        shutil.copytree(tiny_checkpoint("llava"), snapshot)
        (snapshot / "focus_config.json").write_text(json.dumps(focus_config))
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return str(tmp_path / "cache")


def test_cache_dir_and_revision_load_offline_from_a_hub_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = _hub_cache(tmp_path, {"main": {"alpha": 0.3}, "v2": {"alpha": 0.6}})
    main = FocusDecoder.from_pretrained("org/tiny-llava", cache_dir=cache)
    tagged = FocusDecoder.from_pretrained("org/tiny-llava", cache_dir=cache, revision="v2")
    assert main.resolve_options().alpha == 0.3 and tagged.resolve_options().alpha == 0.6
    assert tagged.generate(images=[_image()] * 2, prompt="q", max_new_tokens=2).usage.output_tokens >= 1
    with pytest.raises(Exception, match="tiny-llava"):
        FocusDecoder.from_pretrained("org/tiny-llava", cache_dir=cache, revision="no-such-branch")


def _image():
    from PIL import Image

    return Image.new("RGB", (30, 20), (200, 10, 10))


def test_a_missing_quantization_backend_is_an_option_error() -> None:
    from transformers import BitsAndBytesConfig

    pytest.importorskip("accelerate")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("bitsandbytes is installed here")
    with pytest.raises(InvalidOptionError, match="bitsandbytes"):
        FocusDecoder.from_pretrained(
            tiny_checkpoint("llava"), quantization_config=BitsAndBytesConfig(load_in_4bit=True)
        )


@pytest.mark.parametrize(
    "options, match",
    [
        ({"device": "tpu"}, "unknown device"),
        ({"device": "cuda:7"}, "cuda"),
        ({"device": "cpu", "device_map": "auto"}, "not both"),
        ({"device_map": "bogus"}, "device_map"),
        ({"attn_implementation": "bogus"}, "attn_implementation"),
        ({"revision": 5}, "revision"),
        ({"model_kwargs": {"dtype": "float16"}}, "model_kwargs"),
        ({"trust_remote_code": "yes"}, "trust_remote_code"),
        ({"cache_dirr": "/tmp"}, "loading options: .*cache_dir"),
    ],
)
def test_bad_loading_options_are_clear_errors(options, match) -> None:
    if options.get("device") == "cuda:7" and torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(InvalidOptionError, match=match):
        FocusDecoder.from_pretrained(tiny_checkpoint("llava"), **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a CPU-only torch build")
def test_cuda_on_a_cpu_build_is_an_option_error() -> None:
    with pytest.raises(InvalidOptionError, match="no usable cuda"):
        FocusDecoder.from_pretrained(tiny_checkpoint("llava"), device="cuda")


@pytest.mark.parametrize("keep", [4, 100, 0.5])
def test_truncated_weights_are_a_checkpoint_error(tmp_path, keep) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint("llava"), folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match="damaged"):
        FocusDecoder.from_pretrained(folder)
