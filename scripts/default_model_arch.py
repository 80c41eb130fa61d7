"""The default model's parts, built from stock transformers classes (used by ``train_default_model.py``):
its word-level tokenizer, ChatML-like chat template, ``LlavaProcessor`` and the small
``LlavaForConditionalGeneration`` (CLIP vision tower, Llama text side)."""

from __future__ import annotations

import torch

from focus_integrations.lab import prompts

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SPECIAL_TOKENS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<image>"]
ROLE_WORDS = ["system", "user", "assistant", "tool"]

# ChatML-like turns; every image is announced as "Image k:" (k counts images across the conversation), so
# "image 2" in a question names the same slot the template marked. Text items and string contents pass as is.
CHAT_TEMPLATE = (
    "{% set ns = namespace(image=0) %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item %}{% set ns.image = ns.image + 1 %}"
    "Image {{ ns.image }}: <image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# --------------------------------------------------------------------------------------------- building


def build_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    words: set[str] = set(ROLE_WORDS) | {"image", ":"} | {str(i) for i in range(10)}
    for text in prompts.all_prompt_texts():
        words.update(piece for piece, _ in pre.pre_tokenize_str(text.lower()))
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + sorted(words))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre
    core.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        extra_special_tokens={"image_token": "<image>"},
        model_max_length=1024,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def tokens_per_image(image_size: int, patch_size: int) -> int:
    return (image_size // patch_size) ** 2 + 1  # patches + CLS ("full" feature selection)


def build_processor(tokenizer, image_size: int, patch_size: int):
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )


def build_model(tokenizer, seed: int, text_hidden: int, text_layers: int, image_size: int, patch_size: int):
    from transformers import (
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    vision = CLIPVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        projection_dim=128,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden,
        intermediate_size=text_hidden * 8 // 3,
        num_hidden_layers=text_layers,
        num_attention_heads=text_hidden // 32,
        num_key_value_heads=text_hidden // 32,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        image_seq_length=tokens_per_image(image_size, patch_size),
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=8,
    )
    return model
