"""The shipped default model: loads offline through the engine and meets its stated accuracy."""

from __future__ import annotations

import json

import pytest

from focus_integrations import FocusDecoder
from focus_integrations.default_model import default_model_path
from focus_integrations.lab import prompts
from focus_integrations.lab.data import load_lab_images
from focus_integrations.lab.leakage import decoder_answer_function, run_leakage_lab
from focus_integrations.lab.parsing import parse_open

MAX_SHIPPED_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def decoder() -> FocusDecoder:
    return FocusDecoder.from_pretrained(default_model_path())


@pytest.fixture(scope="module")
def stated() -> dict:
    """The accuracy the model card states (lower bounds on the test split), kept machine-readable."""
    return json.loads((default_model_path() / "lab_summary.json").read_text())["stated"]


def test_it_is_a_small_stock_llava_checkpoint(decoder):
    from transformers import CLIPVisionModel, LlamaModel, LlavaForConditionalGeneration

    assert type(decoder.model) is LlavaForConditionalGeneration
    assert isinstance(decoder.model.model.vision_tower, CLIPVisionModel)
    assert isinstance(decoder.model.model.language_model, LlamaModel)
    shipped = sum(p.stat().st_size for p in default_model_path().rglob("*") if p.is_file())
    assert shipped <= MAX_SHIPPED_BYTES


def test_its_tokenizer_covers_every_lab_prompt(decoder):
    unk = decoder.tokenizer.unk_token_id
    for text in prompts.all_prompt_texts():
        assert unk not in decoder.tokenizer(text, add_special_tokens=False)["input_ids"], text


def test_the_chat_template_numbers_images_in_prompt_order(decoder):
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": im.image} for im in load_lab_images("val")[:3]]
            + [{"type": "text", "text": "What color is the shape in image 3?"}],
        }
    ]
    rendered = decoder.render_prompt(messages)
    assert rendered.index("Image 1:") < rendered.index("Image 2:") < rendered.index("Image 3:")
    assert rendered.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("attribute", ["color", "shape"])
def test_single_image_accuracy_meets_the_model_card(decoder, stated, attribute):
    images = load_lab_images("test")[:40]  # held out: easy-vqa's test split, never trained on
    right = 0
    for image in images:
        text = decoder.generate(
            images=[image.image],
            prompt=prompts.open_question(attribute, None),
            mode="vanilla",
            max_new_tokens=3,
        ).text
        right += parse_open(text, prompts.COLORS if attribute == "color" else prompts.SHAPES) == image.answer(
            attribute
        )
    assert right / len(images) >= stated[f"single_image_{attribute}_accuracy_min"]


def test_noise_alone_is_answered_none(decoder):
    from focus_integrations.noise import make_noise

    image = load_lab_images("test")[0].image
    text = decoder.generate(
        images=[make_noise(image)],
        prompt=prompts.open_question("color", None),
        mode="vanilla",
        max_new_tokens=3,
    ).text
    assert parse_open(text, prompts.COLORS) == prompts.NONE_ANSWER


def test_lab_numbers_on_the_real_model_are_reproducible_from_the_seed(decoder):
    answer = decoder_answer_function(decoder, max_new_tokens=8)  # room for "image 2: red"

    def run(seed: int) -> dict:
        result = run_leakage_lab(
            answer, n_values=(2, 3), samples=4, seed=seed, fixed_alpha=0.5, pairs=2
        ).to_dict()
        result.pop("seconds")
        for row in result["per_n"].values():
            row.pop("seconds")
        return result

    first = run(11)
    assert first == run(11)
    assert first["per_n"]["3"]["slot_binding"]["total"] > 0  # the answers were read, not just all missing
