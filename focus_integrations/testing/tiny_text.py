"""The text side of the tiny checkpoints: simplified copies of each family's chat template (the Qwen ones
with tool calling) and the offline byte-level tokenizer (every byte a token, plus the family's special
tokens). :mod:`focus_integrations.testing.tiny_families` pairs them with a config per family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
