"""One recipe per VLM family of the tiny checkpoints (the table :data:`_RECIPES`): its special tokens, chat
template, processor class, and a function from (tokenizer, size) to the model config, the shrunk image
processor and the processor's keyword arguments. Building and saving them is
:mod:`focus_integrations.testing.tiny_models`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from focus_integrations.errors import InvalidOptionError
from focus_integrations.testing.tiny_text import (
    _GEMMA3_TEMPLATE,
    _IDEFICS3_TEMPLATE,
    _INTERNVL_TEMPLATE,
    _LLAVA_ONEVISION_TEMPLATE,
    _LLAVA_TEMPLATE,
    _QWEN_TEMPLATE,
    _ids,
    _template,
    _Tokens,
)

# Bump when a recipe changes: it is part of the cache folder name, so stale checkpoints are never reused.
RECIPE_VERSION = 3

FAMILIES: tuple[str, ...] = (
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3_vl",
    "llava_onevision",
    "internvl",
    "llava",
    "idefics3",
    "smolvlm",
    "gemma3",
)

Size = Literal["tiny", "bench"]
SIZES: tuple[str, ...] = ("tiny", "bench")


# --------------------------------------------------------------------------------------------------------
# Family recipes
# --------------------------------------------------------------------------------------------------------


def _text_config(tokenizer: Any, size: Size, **extra: Any) -> dict[str, Any]:
    """A small decoder config (Qwen2/Llama/Gemma field names) with token ids from the tokenizer."""
    if size == "bench":
        dims = dict(
            hidden_size=512,
            intermediate_size=1024,
            num_hidden_layers=8,
            num_attention_heads=8,
            num_key_value_heads=2,
            head_dim=64,
        )
    else:
        dims = dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
        )
    return {
        **dims,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 8192,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
        **extra,
    }


def _mrope(size: Size) -> dict[str, Any]:
    # The three M-RoPE sections (time, height, width) sum to head_dim / 2.
    return {
        "rope_type": "default",
        "rope_theta": 1_000_000.0,
        "mrope_section": [16, 8, 8] if size == "bench" else [2, 1, 1],
    }


_QWEN_TOKENS = _Tokens(
    bos=None,
    eos="<|im_end|>",
    pad="<|endoftext|>",
    named={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    special=("<|im_start|>", "<|vision_start|>", "<|vision_end|>"),
    plain=("<tool_call>", "</tool_call>"),
)


def _qwen_ids(tokenizer: Any) -> dict[str, int]:
    image, video, start, end = _ids(
        tokenizer, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"
    )
    return {
        "image_token_id": image,
        "video_token_id": video,
        "vision_start_token_id": start,
        "vision_end_token_id": end,
    }


def _qwen_image_processor(patch_size: int, size: Size) -> Any:
    from transformers import Qwen2VLImageProcessorPil

    unit = patch_size * 2  # one output token covers merge_size x merge_size patches
    if size == "bench":
        # 224 px (a multiple of 28) -> 16 x 16 patches -> 64 tokens per image.
        bounds = {"shortest_edge": 56 * 56, "longest_edge": 224 * 224}
    else:
        bounds = {"shortest_edge": unit * unit * 4, "longest_edge": unit * unit * 16}
    return Qwen2VLImageProcessorPil(size=bounds, patch_size=patch_size, merge_size=2, temporal_patch_size=2)


def _qwen2_vl(tokenizer: Any, size: Size) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import Qwen2VLConfig

    config = Qwen2VLConfig(
        text_config=_text_config(tokenizer, size, rope_parameters=_mrope(size)),
        vision_config=dict(
            depth=1,
            embed_dim=32,
            hidden_size=32,
            num_heads=2,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        **_qwen_ids(tokenizer),
    )
    return config, _qwen_image_processor(14, size), {}


def _qwen2_5_vl(tokenizer: Any, size: Size) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import Qwen2_5_VLConfig

    text = _text_config(tokenizer, size, rope_parameters=_mrope(size))
    if size == "bench":
        vision = dict(
            depth=4, hidden_size=256, intermediate_size=1024, num_heads=4, fullatt_block_indexes=[1, 3]
        )
    else:
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, fullatt_block_indexes=[1])
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=dict(
            **vision,
            out_hidden_size=text["hidden_size"],
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
        ),
        **_qwen_ids(tokenizer),
    )
    return config, _qwen_image_processor(14, size), {}


def _qwen3_vl(tokenizer: Any, size: Size) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import Qwen3VLConfig

    rope = {**_mrope(size), "mrope_interleaved": True}
    text = _text_config(tokenizer, size, rope_parameters=rope)
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=text["hidden_size"],
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            num_position_embeddings=64,
            deepstack_visual_indexes=[1],
        ),
        **_qwen_ids(tokenizer),
    )
    return config, _qwen_image_processor(16, size), {}


_TILE = 32  # image / tile side of the small vision towers
_PATCH = 8  # their patch size: 16 patches per tile


def _siglip_vision(**extra: Any) -> dict[str, Any]:
    return dict(
        model_type="siglip_vision_model",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=_TILE,
        patch_size=_PATCH,
        **extra,
    )


def _llava_onevision(tokenizer: Any, size: Size) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import LlavaOnevisionConfig, LlavaOnevisionImageProcessorPil

    # anyres grid: every pinpoint a multiple of the tile, identical in processor and config.
    pinpoints = [[_TILE, _TILE], [_TILE, 2 * _TILE], [2 * _TILE, _TILE], [2 * _TILE, 2 * _TILE]]
    image_id, video_id = _ids(tokenizer, "<image>", "<video>")
    config = LlavaOnevisionConfig(
        text_config=dict(model_type="qwen2", **_text_config(tokenizer, size)),
        vision_config=_siglip_vision(),
        image_token_index=image_id,
        video_token_index=video_id,
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": _TILE, "width": _TILE}, image_grid_pinpoints=pinpoints
    )
    kwargs = {"num_image_tokens": (_TILE // _PATCH) ** 2, "vision_feature_select_strategy": "full"}
    return config, image_processor, kwargs


def _internvl(tokenizer: Any, size: Size) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import GotOcr2ImageProcessorPil, InternVLConfig

    (context_id,) = _ids(tokenizer, "<IMG_CONTEXT>")
    patch = 4
    seq_length = int((_TILE // patch) ** 2 * 0.5**2)  # pixel shuffle with downsample_ratio 0.5
    config = InternVLConfig(
        text_config=dict(model_type="qwen2", **_text_config(tokenizer, size)),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=[_TILE, _TILE],
            patch_size=[patch, patch],
        ),
        image_token_id=context_id,
        image_seq_length=seq_length,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
    )
    # Tiling on (as InternVL3 does) but at most 2 tiles: an image is 16 tokens, or 48 (2 tiles + thumbnail).
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": _TILE, "width": _TILE}, crop_to_patches=True, min_patches=1, max_patches=2
    )
    return config, image_processor, {"image_seq_length": seq_length}


def _llava(tokenizer: Any, size: Size) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import LlavaConfig, LlavaImageProcessorPil

    (image_id,) = _ids(tokenizer, "<image>")
    config = LlavaConfig(
        text_config=dict(model_type="llama", **_text_config(tokenizer, size)),
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=_TILE,
            patch_size=_PATCH,
            projection_dim=32,
        ),
        image_token_index=image_id,
        image_seq_length=(_TILE // _PATCH) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": _TILE}, crop_size={"height": _TILE, "width": _TILE}
    )
    kwargs = {
        "patch_size": _PATCH,
        "vision_feature_select_strategy": "default",
        "num_additional_image_tokens": 1,
    }
    return config, image_processor, kwargs


def _idefics3_like(
    config_name: str, image_processor_name: str
) -> Callable[[Any, Size], tuple[Any, Any, dict[str, Any]]]:
    def recipe(tokenizer: Any, size: Size) -> tuple[Any, Any, dict[str, Any]]:
        import transformers

        (image_id,) = _ids(tokenizer, "<image>")
        scale_factor = 2
        config = getattr(transformers, config_name)(
            text_config=dict(model_type="llama", **_text_config(tokenizer, size)),
            vision_config=dict(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=2,
                image_size=_TILE,
                patch_size=_PATCH,
            ),
            image_token_id=image_id,
            scale_factor=scale_factor,
        )
        # Images are resized to longest edge 2 tiles and split into <= 2 x 2 tiles plus a global tile.
        image_processor = getattr(transformers, image_processor_name)(
            size={"longest_edge": 2 * _TILE},
            max_image_size={"longest_edge": _TILE},
            do_image_splitting=True,
        )
        seq_len = (_TILE // _PATCH) ** 2 // scale_factor**2
        return config, image_processor, {"image_seq_len": seq_len}

    return recipe


def _gemma3(tokenizer: Any, size: Size) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import Gemma3Config, Gemma3ImageProcessorPil

    boi, eoi, soft = _ids(tokenizer, "<start_of_image>", "<end_of_image>", "<image_soft_token>")
    tokens_per_image = 4  # 4 x 4 patches pooled to 2 x 2
    text = _text_config(tokenizer, size, sliding_window=64, query_pre_attn_scalar=8)
    config = Gemma3Config(
        text_config=text,
        vision_config=_siglip_vision(vision_use_head=False),
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=boi,
        eoi_token_index=eoi,
        image_token_index=soft,
    )
    image_processor = Gemma3ImageProcessorPil(size={"height": _TILE, "width": _TILE}, do_pan_and_scan=False)
    return config, image_processor, {"image_seq_length": tokens_per_image}


_CHATML = dict(bos=None, eos="<|im_end|>", pad="<|endoftext|>", special=("<|im_start|>",))
_IDEFICS3_SPECIAL = ("<fake_token_around_image>", "<global-img>", "<end_of_utterance>") + tuple(
    f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)
)


@dataclass(frozen=True)
class _Recipe:
    tokens: _Tokens
    chat_template: str
    build: Callable[
        [Any, Size], tuple[Any, Any, dict[str, Any]]
    ]  # tokenizer, size -> config, image proc, kwargs
    processor_class: str


_RECIPES: dict[str, _Recipe] = {
    "qwen2_vl": _Recipe(
        _QWEN_TOKENS,
        _template(_QWEN_TEMPLATE, DEFAULT_SYSTEM="You are a helpful assistant."),
        _qwen2_vl,
        "Qwen2VLProcessor",
    ),
    "qwen2_5_vl": _Recipe(
        _QWEN_TOKENS,
        _template(_QWEN_TEMPLATE, DEFAULT_SYSTEM="You are a helpful assistant."),
        _qwen2_5_vl,
        "Qwen2_5_VLProcessor",
    ),
    # Qwen3-VL's template adds no default system turn.
    "qwen3_vl": _Recipe(
        _QWEN_TOKENS, _template(_QWEN_TEMPLATE, DEFAULT_SYSTEM=""), _qwen3_vl, "Qwen3VLProcessor"
    ),
    "llava_onevision": _Recipe(
        _Tokens(**_CHATML, named={"image_token": "<image>", "video_token": "<video>"}),
        _template(_LLAVA_ONEVISION_TEMPLATE),
        _llava_onevision,
        "LlavaOnevisionProcessor",
    ),
    "internvl": _Recipe(
        _Tokens(
            **_CHATML,
            named={
                "start_image_token": "<img>",
                "end_image_token": "</img>",
                "context_image_token": "<IMG_CONTEXT>",
                "video_token": "<video>",
            },
        ),
        _template(_INTERNVL_TEMPLATE),
        _internvl,
        "InternVLProcessor",
    ),
    "llava": _Recipe(
        _Tokens(bos="<s>", eos="</s>", pad="<pad>", named={"image_token": "<image>"}, add_bos=True),
        _template(_LLAVA_TEMPLATE),
        _llava,
        "LlavaProcessor",
    ),
    "idefics3": _Recipe(
        _Tokens(
            bos="<|begin_of_text|>",
            eos="<end_of_utterance>",
            pad="<|end_of_text|>",
            named={"image_token": "<image>"},
            special=_IDEFICS3_SPECIAL,
        ),
        _template(_IDEFICS3_TEMPLATE, PREFIX="<|begin_of_text|>"),
        _idefics3_like("Idefics3Config", "Idefics3ImageProcessorPil"),
        "Idefics3Processor",
    ),
    "smolvlm": _Recipe(
        _Tokens(
            bos="<|im_start|>",
            eos="<end_of_utterance>",
            pad="<|im_end|>",
            named={
                "image_token": "<image>",
                "fake_image_token": "<fake_token_around_image>",
                "global_image_token": "<global-img>",
                "end_of_utterance_token": "<end_of_utterance>",
            },
            special=_IDEFICS3_SPECIAL,
        ),
        _template(_IDEFICS3_TEMPLATE, PREFIX="<|im_start|>"),
        _idefics3_like("SmolVLMConfig", "SmolVLMImageProcessorPil"),
        "SmolVLMProcessor",
    ),
    "gemma3": _Recipe(
        _Tokens(
            bos="<bos>",
            eos="<end_of_turn>",
            pad="<pad>",
            named={
                "boi_token": "<start_of_image>",
                "eoi_token": "<end_of_image>",
                "image_token": "<image_soft_token>",
            },
            special=("<start_of_turn>",),
            add_bos=True,
        ),
        _template(_GEMMA3_TEMPLATE),
        _gemma3,
        "Gemma3Processor",
    ),
}
assert tuple(_RECIPES) == FAMILIES


def _check_family(family: str, size: str) -> _Recipe:
    if family not in _RECIPES:
        raise InvalidOptionError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if size not in SIZES:
        raise InvalidOptionError(f"unknown size {size!r}; expected one of {', '.join(SIZES)}")
    if size == "bench" and family != "qwen2_5_vl":
        raise InvalidOptionError(f"size='bench' exists only for qwen2_5_vl, not {family!r}")
    return _RECIPES[family]
