"""The parsers against a table of realistic model outputs, reference quirks included."""

from __future__ import annotations

import pytest

from focus_integrations.harness.benchmarks import mantis, mirb, muirbench, vinoground, vismin, winoground
from focus_integrations.harness.benchmarks import mmlb_metrics as m
from focus_integrations.harness.parsing import (
    StrictExact,
    StrictLetter,
    after_first_cue,
    reference_gold,
    strip_reasoning,
)

WINO_REF = winoground.BENCHMARK.protocols["reference"].parser
VINO_REF = vinoground.BENCHMARK.protocols["reference"].parser
VISMIN_REF = vismin.BENCHMARK.protocols["reference"].parser
MANTIS_REF = mantis.BENCHMARK.protocols["reference"].parser
MUIR_REF = muirbench.BENCHMARK.protocols["reference"].parser


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A", "a"),
        ("B.", "b"),
        ("(B): the second image", "b"),
        ("The answer is B", "b"),
        ("b, because the dog is on the left", "b"),
        ("I think it is a dog", "a"),  # the article "a" is read as option A (reference quirk)
        ("Neither caption fits", "a"),  # no standalone a/b: the free "a" fallback
        ("", "a"),
        ("The second one", "a"),  # fallback again: a B-gold query scored wrong, an A-gold one right
    ],
)
def test_winoground_and_vinoground_reference_parser(text: str, expected: str) -> None:
    assert WINO_REF.parse(text) == expected
    assert VINO_REF.parse(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("B", "b"), ("Neither", "ab"), ("A.", "a"), ("c", "ab")])
def test_vismin_reference_falls_back_to_ab(text: str, expected: str) -> None:
    assert VISMIN_REF.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(C)", "c"),
        ("C", "c"),
        ("Based on the images, the answer is D", "d"),  # Mantis cuts after "the answer is": d
        ("Final Answer: (B) the red one. The answer is C", "b"),  # "final answer:" has priority
        ("prediction: b", "b"),
        ("E", "abcd"),  # option E cannot be read: fallback "abcd", always wrong
        ("(E) none of the choices", "c"),  # ... and the unbounded regex finds the "c" of "choices"
        ("none", "abcd"),
        ("Yes", "abcd"),
    ],
)
def test_mantis_reference_parser(text: str, expected: str) -> None:
    assert MANTIS_REF.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "b"),
        ("Based on the images, D", "b"),  # unbounded regex: the "b" of "Based" (MuirBench cuts no cue)
        ("The answer is D", "a"),  # "the" has no a-d, the "a" of "answer" comes first
        ("(E)", "abcd"),
        ("E. None of the choices provided", "c"),
        ("1", "abcd"),
    ],
)
def test_muirbench_reference_parser(text: str, expected: str) -> None:
    assert MUIR_REF.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "letters", "expected"),
    [
        ("B", "ab", "b"),
        ("(B)", "abcd", "b"),
        ("B. red", "abcde", "b"),
        ("E", "abcde", "e"),  # every option letter can be read
        ("(E) None of the choices provided", "abcde", "e"),
        ("The answer is C.", "abcd", "c"),
        ("Answer: D", "abcd", "d"),
        ("Based on the images, the answer is D", "abcd", "d"),
        ("A dog sits on the left.", "ab", None),  # the article is not an option
        ("I think it is a dog", "ab", None),
        ("Neither caption fits", "ab", None),  # no fallback
        ("", "abcd", None),
        ("F", "abcde", None),  # not an option of this item
        ("Option B is correct", "abcd", "b"),
    ],
)
def test_strict_letter_parser(text: str, letters: str, expected: str | None) -> None:
    assert StrictLetter(letters).parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("First", "a"), ("Second.", "b"), ("The second image.", "b"), ("B", "b"), ("neither", None)],
)
def test_vismin_strict_reads_first_second(text: str, expected: str | None) -> None:
    assert vismin.BENCHMARK.protocols["strict"].parser.parse(text) == expected


def test_mirb_reference_is_whole_answer_exact_match() -> None:
    parser = mirb.BENCHMARK.protocols["reference"].parser
    assert parser.parse("Teal.") == "teal"
    assert parser.parse("The answer is teal") == "the answer is teal"  # wrong under the reference rule
    assert parser.parse("2,000") == "2000"
    assert StrictExact().parse("Answer: The Teal.\nbecause") == "teal"


def test_reasoning_is_stripped_for_any_model() -> None:
    assert strip_reasoning("<think>It could be A... no.</think>\n\nB") == "B"
    assert strip_reasoning("long reasoning without an opening tag</think>\n\nB") == "B"
    assert strip_reasoning("◁think▷hmm◁/think▷A") == "A"
    assert strip_reasoning("plain B") == "plain B"


def test_cue_priority_and_gold() -> None:
    assert after_first_cue("answer: x. the answer is y") == "y"  # "the answer is" is tried before "answer:"
    assert reference_gold(" (A) ") == "a"


def test_mmlongbench_metrics_hand_values() -> None:
    assert m.sub_em("The answer is Paris, France.", ["paris"]) == 1.0
    assert m.sub_em("London", [["paris", "Paris City"]]) == 0.0
    assert m.binary_label("Yes, there is. Actually no.") == 0
    assert m.binary_label("maybe") == -1
    assert m.count_list("counts: [1, 2, 0]") == [1, 2, 0]
    assert m.choice_index("I pick B. Answer: C") == 2
    assert m.class_number("label: 17") == 17
    assert m.doc_qa("12", "There are 12 pages", "Integer") == 1.0
    assert m.doc_qa("0.5", "50%", "Float") == 1.0
    assert m.doc_qa("red circle", "a red circle", "String") == pytest.approx(1.0)
    # List: mean over ["red" (F1 of "red and 3" vs "red": p=1/3, r=1 -> 0.5), 3 (Integer found -> 1)]
    assert m.doc_qa('["red", 3]', "red and 3", "List") == pytest.approx(0.75)
    assert m.f1("red blue", "red green") == pytest.approx(0.5)
    assert m.parse_output("Blah. Answer: Paris", "Answer:") == "Paris"
    assert m.rouge_l("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
