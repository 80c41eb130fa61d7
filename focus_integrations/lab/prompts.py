"""The lab's prompts, in plain natural language that real vision-language models follow.

The wording follows the FOCUS reference runners where a benchmark exists (Winoground for image pairs,
MuirBench for multiple choice); open questions ask about "image k" by number, counting images in prompt
order. The default model's tokenizer and training data are built from these same functions, so the lab and
the model can never drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence

COLORS: tuple[str, ...] = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
SHAPES: tuple[str, ...] = ("circle", "rectangle", "triangle")
ATTRIBUTES: tuple[str, ...] = ("color", "shape")
NONE_ANSWER = "none"
OPTION_LETTERS = "ABCD"
MAX_IMAGES = 9

# The Winoground runner's system turn.
EVALUATOR_SYSTEM = "You are an evaluator tasked with comparing images and captions to answer the question."
ANSWER_HINT = "Answer with one word, or none if there is no shape."
MC_HINT = "Hint: Please provide the correct option letter, such as A, B, C, D, directly."


def _where(slot: int | None) -> str:
    return "the image" if slot is None else f"image {slot}"


def open_question(attribute: str, slot: int | None) -> str:
    """Ask for the colour or shape of the shape in image ``slot`` (``None``: the only image)."""
    if attribute == "color":
        return f"What color is the shape in {_where(slot)}? {ANSWER_HINT}"
    if attribute == "shape":
        return f"What shape is in {_where(slot)}? {ANSWER_HINT}"
    raise ValueError(f"unknown attribute {attribute!r}; choose one of {ATTRIBUTES}")


def multiple_choice_question(attribute: str, slot: int | None, options: Sequence[str]) -> str:
    """MuirBench-style multiple choice (the reference runner's layout: question, choices, hint)."""
    if not 2 <= len(options) <= len(OPTION_LETTERS):
        raise ValueError(f"need 2..{len(OPTION_LETTERS)} options, got {len(options)}")
    head = (
        f"What color is the shape in {_where(slot)}?"
        if attribute == "color"
        else f"What shape is in {_where(slot)}?"
    )
    choices = "\n".join(f"({letter}) {option}" for letter, option in zip(OPTION_LETTERS, options))
    return f"Question: {head}\nChoices:\n{choices}\n{MC_HINT}"


def locate_question(color: str) -> str:
    """Which image holds the shape of ``color``; the answer is the image's number (1 = first)."""
    return f"In which image is the {color} shape? Answer with one word."


def caption(color: str, shape: str) -> str:
    return f"a {color} {shape}"


def image_score_question(description: str) -> str:
    """Winoground image score: which of two images matches one caption (the reference runner's prompt)."""
    return (
        f"Which image better aligns with the description: {description}? "
        "The (A): first or the (B): second image? Answer with A or B."
    )


def text_score_question(caption_a: str, caption_b: str) -> str:
    """Winoground text score: which of two captions matches one image (the reference runner's prompt)."""
    return f"Does this image depict: (A): {caption_a} or (B): {caption_b}? Answer with A or B."


def all_prompt_texts() -> list[str]:
    """Every prompt shape the lab can produce, used to build the default model's word vocabulary."""
    texts = [EVALUATOR_SYSTEM, ANSWER_HINT, MC_HINT]
    slots: list[int | None] = [None, *range(1, MAX_IMAGES + 1)]
    for slot in slots:
        for attribute in ATTRIBUTES:
            texts.append(open_question(attribute, slot))
            texts.append(multiple_choice_question(attribute, slot, [*COLORS[:2], *SHAPES[:2]]))
    for color in COLORS:
        texts.append(locate_question(color))
        for shape in SHAPES:
            texts.append(image_score_question(caption(color, shape)))
            texts.append(text_score_question(caption(color, shape), caption(color, shape)))
    texts.extend([*COLORS, *SHAPES, NONE_ANSWER, *OPTION_LETTERS])
    return texts
