"""Tiny random checkpoints of every supported VLM family, built offline from their config classes.

``build_checkpoint(family, path)`` writes a folder that loads like a real checkpoint of that family:
``AutoModelForImageTextToText.from_pretrained(path)`` and ``focus_integrations.processors.load_processor(path)``.
(The processors are saved without a video processor, so for the families with a video slot plain
``AutoProcessor`` fails even where torchvision exists; ``load_processor`` then uses the image-only class.)
Each one has

- random weights (``torch.manual_seed(seed)``), 45-150 k parameters, 0.2-0.6 MB on disk; no weight matrix
  is left at zero, so images always change the logits;
- a byte-level BPE tokenizer with no merges (every byte is a token) plus the family's special tokens, with
  ``config.vocab_size`` and every token id of the config (bos/eos/pad/image/vision...) taken from it;
- the family's image processor, shrunk so that an image is a handful of tokens, and a vision config that
  agrees with it;
- a simplified copy of the family's real chat template (the Qwen ones with tool calling);
- a ``generation_config`` with the template's end-of-turn token as EOS.

``tiny_checkpoint(family)`` builds once into a cache folder and returns it; concurrent builders (pytest-xdist
workers, parallel sessions) are safe because each builds in a private temporary folder and renames it into
place atomically.

``size="bench"`` (Qwen2.5-VL only) builds a ~25 M-parameter model with realistic proportions (hidden 512,
8 layers, vision depth 4, 224 px images -> 64 tokens each) for benchmarks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from focus_integrations.errors import InvalidOptionError

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
# Chat templates: simplified copies of the families' real ones. Content may be a string or a list of
# {"type": "image"} / {"type": "text", "text": ...} items.
# --------------------------------------------------------------------------------------------------------

# Qwen2.5-VL's vision template merged with Qwen2.5's tool-calling template (the shape of Qwen's own
# combined templates): tools in the system turn, assistant tool calls as <tool_call> JSON, tool results as
# <tool_response> blocks inside one user turn (images allowed there too).
_QWEN_TEMPLATE = r"""
{%- set counts = namespace(image=0, video=0) -%}
{%- macro render_content(content) -%}
{%- if content is string -%}{{- content -}}
{%- elif content is not none -%}
{%- for item in content -%}
{%- if item.type == 'image' or 'image' in item or 'image_url' in item -%}
{%- set counts.image = counts.image + 1 -%}
{%- if add_vision_id -%}{{- 'Picture ' ~ counts.image ~ ': ' -}}{%- endif -%}
{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
{%- elif item.type == 'video' or 'video' in item -%}
{%- set counts.video = counts.video + 1 -%}
{%- if add_vision_id -%}{{- 'Video ' ~ counts.video ~ ': ' -}}{%- endif -%}
{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
{%- elif 'text' in item -%}{{- item.text -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- if tools -%}
{{- '<|im_start|>system\n' -}}
{%- if messages[0].role == 'system' -%}{{- render_content(messages[0].content) -}}
{%- else -%}{{- '@DEFAULT_SYSTEM@' -}}{%- endif -%}
{{- '\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>' -}}
{%- for tool in tools -%}{{- '\n' -}}{{- tool | tojson -}}{%- endfor -%}
{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' -}}
{%- elif messages[0].role == 'system' -%}
{{- '<|im_start|>system\n' -}}{{- render_content(messages[0].content) -}}{{- '<|im_end|>\n' -}}
{%- elif '@DEFAULT_SYSTEM@' -%}
{{- '<|im_start|>system\n@DEFAULT_SYSTEM@<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
{%- if message.role == 'user' or (message.role == 'system' and not loop.first) or (message.role == 'assistant' and not message.tool_calls) -%}
{{- '<|im_start|>' + message.role + '\n' -}}{{- render_content(message.content) -}}{{- '<|im_end|>\n' -}}
{%- elif message.role == 'assistant' -%}
{{- '<|im_start|>assistant' -}}
{%- if message.content -%}{{- '\n' -}}{{- render_content(message.content) -}}{%- endif -%}
{%- for tool_call in message.tool_calls -%}
{%- if tool_call.function is defined -%}{%- set tool_call = tool_call.function -%}{%- endif -%}
{{- '\n<tool_call>\n{"name": "' + tool_call.name + '", "arguments": ' -}}
{%- if tool_call.arguments is string -%}{{- tool_call.arguments -}}{%- else -%}{{- tool_call.arguments | tojson -}}{%- endif -%}
{{- '}\n</tool_call>' -}}
{%- endfor -%}
{{- '<|im_end|>\n' -}}
{%- elif message.role == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}
{{- '\n<tool_response>\n' -}}{{- render_content(message.content) -}}{{- '\n</tool_response>' -}}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}{{- '<|im_end|>\n' -}}{%- endif -%}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""

# LLaVA-OneVision: ChatML; in each turn the images first, then the texts (as the real template does).
_LLAVA_ONEVISION_TEMPLATE = r"""
{%- for message in messages -%}
{{- '<|im_start|>' + message.role + ' ' -}}
{%- if message.content is string -%}{{- '\n' + message.content -}}
{%- else -%}
{%- for item in message.content if item.type == 'image' -%}{{- '<image>' -}}{%- endfor -%}
{%- for item in message.content if item.type == 'video' -%}{{- '<video>' -}}{%- endfor -%}
{%- for item in message.content if item.type == 'text' -%}{{- '\n' + item.text -}}{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""

# InternVL3 (-hf): ChatML, an image is "<IMG_CONTEXT>\n" where it appears (the processor expands it).
_INTERNVL_TEMPLATE = r"""
{%- for message in messages -%}
{{- '<|im_start|>' + message.role + '\n' -}}
{%- if message.content is string -%}{{- message.content -}}
{%- else -%}
{%- for item in message.content -%}
{%- if item.type == 'image' -%}{{- '<IMG_CONTEXT>\n' -}}
{%- elif item.type == 'video' -%}{{- '<video>\n' -}}
{%- elif item.type == 'text' -%}{{- item.text -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""

# LLaVA-1.5 (-hf): "USER: <image>\n... ASSISTANT:"; images first in each turn.
_LLAVA_TEMPLATE = r"""
{%- for message in messages -%}
{%- if message.role != 'system' -%}{{- message.role.upper() + ': ' -}}{%- endif -%}
{%- if message.content is string -%}{{- message.content + ' ' -}}
{%- else -%}
{%- for item in message.content if item.type == 'image' -%}{{- '<image>\n' -}}{%- endfor -%}
{%- for item in message.content if item.type == 'text' -%}{{- item.text + ' ' -}}{%- endfor -%}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}
"""

# Idefics3 / SmolVLM: "User:<image>text<end_of_utterance>\nAssistant:". The prefix differs.
_IDEFICS3_TEMPLATE = r"""
{{- '@PREFIX@' -}}
{%- for message in messages -%}
{{- message.role | capitalize -}}
{%- if message.content is string -%}{{- ': ' + message.content -}}
{%- else -%}
{%- if message.content and message.content[0].type == 'image' -%}{{- ':' -}}{%- else -%}{{- ': ' -}}{%- endif -%}
{%- for item in message.content -%}
{%- if item.type == 'text' -%}{{- item.text -}}
{%- elif item.type == 'image' -%}{{- '<image>' -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<end_of_utterance>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}
"""

# Gemma 3: BOS in the template, system text folded into the first user turn, assistant -> "model".
_GEMMA3_TEMPLATE = r"""
{{- bos_token -}}
{%- if messages[0].role == 'system' -%}
{%- if messages[0].content is string -%}{%- set first_user_prefix = messages[0].content + '\n\n' -%}
{%- else -%}{%- set first_user_prefix = messages[0].content[0].text + '\n\n' -%}{%- endif -%}
{%- set loop_messages = messages[1:] -%}
{%- else -%}
{%- set first_user_prefix = '' -%}
{%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
{%- set role = 'model' if message.role == 'assistant' else message.role -%}
{{- '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') -}}
{%- if message.content is string -%}{{- message.content | trim -}}
{%- else -%}
{%- for item in message.content -%}
{%- if item.type == 'image' -%}{{- '<start_of_image>' -}}
{%- elif item.type == 'text' -%}{{- item.text | trim -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}
"""


def _template(source: str, **substitutions: str) -> str:
    for key, value in substitutions.items():
        source = source.replace(f"@{key}@", value)
    return source.strip()


# --------------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tokens:
    """The special tokens of a family. ``named`` become tokenizer attributes (``tok.image_token``...)."""

    bos: str | None
    eos: str
    pad: str
    named: dict[str, str] = field(default_factory=dict)
    special: tuple[str, ...] = ()
    plain: tuple[str, ...] = ()  # added but not special (they survive decode(skip_special_tokens=True))
    add_bos: bool = False  # the tokenizer itself prepends BOS (Llama, Gemma), as the real ones do


def _build_tokenizer(tokens: _Tokens) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    specials = [t for t in (tokens.bos, tokens.eos, tokens.pad, *tokens.named.values(), *tokens.special) if t]
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in dict.fromkeys(specials)]
    )
    if tokens.plain:
        backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in tokens.plain])
    if tokens.add_bos:
        assert tokens.bos is not None
        bos_id = backend.token_to_id(tokens.bos)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{tokens.bos} $A", pair=f"{tokens.bos} $A $B", special_tokens=[(tokens.bos, bos_id)]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=tokens.bos,
        eos_token=tokens.eos,
        pad_token=tokens.pad,
        extra_special_tokens=dict(tokens.named),
        model_max_length=8192,
        # padding_side stays the library default (right), as in most real checkpoints: code that batches
        # prompts must choose left padding itself.
    )
    return tokenizer


def _ids(tokenizer: Any, *tokens: str) -> list[int]:
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise AssertionError(f"token missing from the tokenizer: {tokens}")
    return ids


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


def _processor_class(name: str) -> type:
    import transformers

    from focus_integrations.processors import image_only_processor_class

    # The image-only class when the stock one has a video slot: it saves under the stock class name.
    return image_only_processor_class(name) or getattr(transformers, name)


def _randomize_zero_initialized_weights(model: Any, std: float) -> None:
    # Some weights start at zero and are only ever loaded from a trained checkpoint (Gemma 3's
    # mm_input_projection_weight, InternVL's vision position embeddings). Left at zero, Gemma 3's image
    # features vanish and images could not change the output at all; give them random values too.
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim >= 2 and not parameter.any():
                parameter.normal_(0.0, std)


def family_processor(
    family: str, image_processor: Any, **processor_kwargs: Any
) -> tuple[Any, dict[str, int]]:
    """The family's processor (its offline tokenizer and chat template) around ``image_processor``, and the
    special-token ids a config of that family must use with it (image/video/vision ids, bos/eos/pad).

    For real-size architectures built from public configs (``benchmarks/gpu_suite.py``): same processor
    class and template as the tiny checkpoints, the real image geometry.
    """
    recipe = _check_family(family, "tiny")
    tokenizer = _build_tokenizer(recipe.tokens)
    tiny_config = recipe.build(tokenizer, "tiny")[0].to_dict()
    ids = {
        k: v
        for k, v in tiny_config.items()
        if k.endswith(("_token_id", "_token_index")) and isinstance(v, int)
    }
    ids |= {
        name: value
        for name, value in (
            ("bos_token_id", tokenizer.bos_token_id),
            ("eos_token_id", tokenizer.eos_token_id),
            ("pad_token_id", tokenizer.pad_token_id),
        )
        if value is not None
    }
    processor = _processor_class(recipe.processor_class)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=recipe.chat_template,
        **processor_kwargs,
    )
    return processor, ids


def build_model_and_processor(family: str, *, size: Size = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """Build (in memory) the random model (eval mode) and processor of ``family``; nothing is written.

    Deterministic for a given (family, size, seed) and library versions; the global torch RNG is left as it
    was. Raises InvalidOptionError for an unknown family or size.
    """
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    recipe = _check_family(family, size)
    tokenizer = _build_tokenizer(recipe.tokens)
    config, image_processor, processor_kwargs = recipe.build(tokenizer, size)
    processor = _processor_class(recipe.processor_class)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=recipe.chat_template,
        **processor_kwargs,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config)
        _randomize_zero_initialized_weights(model, std=getattr(config, "initializer_range", 0.02))
    model.eval()
    # Explicit, so no library default (or sampling preset) sneaks in; EOS is the end-of-turn token.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model, processor


def build_checkpoint(
    family: str, path: str | os.PathLike[str], *, size: Size = "tiny", seed: int = 0
) -> Path:
    """Build a random checkpoint of ``family`` and save model, processor and generation config in ``path``.

    Returns ``path`` as a Path. See :func:`build_model_and_processor`.
    """
    model, processor = build_model_and_processor(family, size=size, seed=seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def tiny_cache_dir() -> Path:
    """Folder holding the cached checkpoints: ``$FOCUS_TINY_CACHE`` or ``~/.cache/focus-integrations/tiny``."""
    configured = os.environ.get("FOCUS_TINY_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "focus-integrations" / "tiny"


def _versions_tag() -> str:
    import transformers

    # Checkpoints saved by one transformers version may not load in an older one: keep them apart.
    return f"tf{transformers.__version__}"


_STALE_STAGING_S = 3600.0  # a build takes seconds; older staging folders are leftovers of killed processes


def _remove_stale_staging(root: Path, name: str) -> None:
    now = time.time()
    for leftover in root.glob(f".{name}-*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_STAGING_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:  # another process removed it first
            pass


def tiny_checkpoint(family: str, *, size: Size = "tiny", seed: int = 0) -> Path:
    """Path of a cached checkpoint of ``family`` (built on first use, offline).

    The folder name holds the family, size, seed, recipe version and transformers version, so a changed
    recipe never reuses a stale build. Safe when several processes race: each builds into a private
    temporary folder and renames it into place; the loser discards its copy.
    """
    _check_family(family, size)
    name = f"{family}-v{RECIPE_VERSION}"
    if size != "tiny":
        name += f"-{size}"
    if seed != 0:
        name += f"-seed{seed}"
    root = tiny_cache_dir() / _versions_tag()
    target = root / name
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(root, name)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        build_checkpoint(family, staging, size=size, seed=seed)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared
        try:
            os.rename(staging, target)  # atomic on one file system; fails if another process won
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


__all__ = [
    "FAMILIES",
    "RECIPE_VERSION",
    "SIZES",
    "build_checkpoint",
    "build_model_and_processor",
    "tiny_cache_dir",
    "tiny_checkpoint",
]
