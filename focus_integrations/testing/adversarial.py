"""Adversarial cases for every entry point, shared by the test suite and ``scripts/reliability_report.py``.

Each case is drawn by hypothesis (``derandomize=True``: the same cases on every run) from pools of good and
bad values, and judged by :func:`judge`: the call runs on a helper thread with a deadline and ends as

* ``answer``     it returned (a failure when the case holds a bad value: an accepted bad input),
* ``error``      a documented :class:`~focus_integrations.errors.FocusError` subclass,
* ``traceback``  any other exception (what a user would see as a raw traceback),
* ``hang``       still running at the deadline.

Store cases also count good images lost to a bad neighbour. Needs the ``test`` extra (hypothesis).

What lives where: this module judges and tallies cases and runs them against the library's entry points
(engine, both adapters, the store, ``load_image``, ``focus ask``); ``adversarial_cases`` holds the values and
hypothesis strategies (each value with its label); ``adversarial_serving`` runs the cases of the serving
entry points (the OpenAI server, ``generate_batch`` / ``BatchEngine.submit``, ``focus eval``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focus_integrations.errors import FocusError
from focus_integrations.testing.adversarial_cases import (
    BAD,
    BAD_OPTIONS,
    EITHER,
    GOOD,
    combine_labels,
    good_image,
    has_surrogate,
    message_lists,
    mutated_images,
    option_sets,
    png_bytes,
    store_bad_items,
)

CASE_DEADLINE_S = (
    60.0  # a case still running after this is a hang (tiny models answer in well under a second)
)


@dataclass
class Outcome:
    entry: str
    case: str
    label: str  # GOOD, BAD or EITHER
    result: str  # answer, error, traceback, hang
    seconds: float
    detail: str = ""
    lost_good: int = 0

    @property
    def failed(self) -> bool:
        return (
            self.result in ("traceback", "hang")
            or (self.result == "answer" and self.label == BAD)
            or (self.result == "error" and self.label == GOOD)
            or self.lost_good > 0
        )


@dataclass
class Tally:
    """Outcomes per entry point, and the table the report prints."""

    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        return outcome

    def rows(self) -> list[dict[str, Any]]:
        entries = list(dict.fromkeys(o.entry for o in self.outcomes))
        rows = []
        for entry in entries:
            mine = [o for o in self.outcomes if o.entry == entry]
            results = Counter(o.result for o in mine)
            rows.append(
                {
                    "entry point": entry,
                    "cases": len(mine),
                    "bad inputs": sum(o.label == BAD for o in mine),
                    "answers": results["answer"],
                    "documented errors": results["error"],
                    "raw tracebacks": results["traceback"],
                    "hangs past deadline": results["hang"],
                    "accepted bad inputs": sum(o.result == "answer" and o.label == BAD for o in mine),
                    "refused good inputs": sum(o.result == "error" and o.label == GOOD for o in mine),
                    "good items lost": sum(o.lost_good for o in mine),
                    "slowest (s)": round(max(o.seconds for o in mine), 2),
                }
            )
        return rows

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]


def judge(
    entry: str, case: str, label: str, call: Callable[[], Any], deadline: float = CASE_DEADLINE_S
) -> Outcome:
    """Run ``call`` on a helper thread and classify how it ended (see the module docstring)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as err:  # noqa: BLE001 - classified below
            box["error"] = err

    start = time.monotonic()
    worker = threading.Thread(target=run, name="focus-adversarial-case", daemon=True)
    worker.start()
    worker.join(deadline)
    seconds = time.monotonic() - start
    if worker.is_alive():
        return Outcome(entry, case, label, "hang", seconds, f"still running after {deadline} s")
    error = box.get("error")
    if error is None:
        value = box.get("value")
        lost = value if isinstance(value, Lost) else None
        return Outcome(entry, case, label, "answer", seconds, "", lost.count if lost else 0)
    if isinstance(error, FocusError):
        lost_good = error.lost if isinstance(error, Refused) else 0
        shown = f"{type(error).__name__}: {str(error)[:160]}"
        return Outcome(entry, case, label, "error", seconds, shown, lost_good)
    if isinstance(error, SystemExit) and error.code == 2:  # argparse's usage error: one line, status 2
        return Outcome(entry, case, label, "error", seconds, "usage error (status 2)")
    return Outcome(entry, case, label, "traceback", seconds, f"{type(error).__name__}: {str(error)[:160]}")


@dataclass
class Lost:
    """What a store case returns: how many good images its bad neighbour cost."""

    count: int


#: Failures that belong to another package and are still open (see FINDINGS.md): (owner, entry, substring of the
#: case). The suite's tests accept exactly these; the report counts them like any other failure.
KNOWN_OPEN: list[tuple[str, str, str]] = []


def known_open(outcome: Outcome) -> str | None:
    """The owner of a still-open failure of another package, or None."""
    for owner, entry, fragment in KNOWN_OPEN:
        if outcome.entry == entry and fragment in outcome.case:
            return owner
    return None


# ------------------------------------------------------------------------------------------------ runners


def property_of(strategy: Any, examples: int) -> Callable[[Callable[[Any], None]], Callable[[], None]]:
    """``@given(strategy)`` with fixed, budgeted settings (the same cases every run)."""

    def decorate(check: Callable[[Any], None]) -> Callable[[], None]:
        return settings(
            max_examples=examples,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )(given(strategy)(check))

    return decorate


def run_engine(decoder: Any, tally: Tally, examples: int = 40) -> None:
    """FocusDecoder.generate over the option space and the message space."""

    @property_of(option_sets(), examples)
    def options(drawn: tuple[dict, str]) -> None:
        opts, label = drawn
        tally.add(
            judge(
                "engine (options)",
                repr(opts),
                label,
                lambda: _answer(
                    decoder.generate(images=[good_image(1), good_image(2)], prompt="Which?", **opts)
                ),
            )
        )

    @property_of(message_lists(), examples)
    def messages(drawn: tuple[list, str, str]) -> None:
        turns, label, shown = drawn
        tally.add(
            judge(
                "engine (messages)",
                shown,
                label,
                lambda: _answer(decoder.generate(messages=turns, max_new_tokens=2, require_images=False)),
            )
        )

    options()
    messages()


LANGCHAIN_NAMES = {"max_new_tokens": "max_tokens"}
LANGCHAIN_DROP = ("do_sample", "shared_vision", "share_prefix")


def run_langchain(decoder: Any, tally: Tally, examples: int = 25) -> None:
    """ChatFocus: constructor options + invoke, and LangChain content blocks."""
    from langchain_core.messages import HumanMessage

    from focus_integrations.langchain import ChatFocus

    def image_block() -> dict:
        return {"type": "image", "base64": base64.b64encode(png_bytes()).decode(), "mime_type": "image/png"}

    @property_of(option_sets(LANGCHAIN_NAMES, LANGCHAIN_DROP), examples)
    def options(drawn: tuple[dict, str]) -> None:
        opts, label = drawn

        def call() -> Any:
            llm = ChatFocus(decoder=decoder, **adapter_arguments(ChatFocus, opts))
            message = llm.invoke([HumanMessage(content=[image_block(), image_block(), "Which?"])])
            assert isinstance(message.content, str)
            return message

        tally.add(judge("ChatFocus", repr(opts), label, call))

    options()


def run_every_bad_option(decoder: Any, tally: Tally) -> None:
    """Each bad option value once (no sampling), at every place an option can be given: ``generate``,
    ``generate_batch``, the ChatFocus and FocusMultiModalLLM constructors and their per-call arguments."""
    from langchain_core.messages import HumanMessage
    from llama_index.core.schema import ImageDocument

    from focus_integrations.langchain import ChatFocus
    from focus_integrations.llama_index import FocusMultiModalLLM

    png = base64.b64encode(png_bytes()).decode()
    block = {"type": "image", "base64": png, "mime_type": "image/png"}
    chat = [HumanMessage(content=[block, block, "Which?"])]
    documents = [ImageDocument(image=png) for _ in range(2)]
    images = [good_image(1), good_image(2)]
    chat_focus = ChatFocus(decoder=decoder, max_tokens=2)
    llama = FocusMultiModalLLM(decoder=decoder, max_new_tokens=2)

    def text_of(value: Any) -> Any:
        assert isinstance(getattr(value, "text", None) or value.content, str)
        return value

    def calls(name: str, value: Any) -> dict[str, Callable[[], Any]]:
        fast = {} if name == "max_new_tokens" else {"max_new_tokens": 2}  # a bad input must not decode long
        one = {**fast, name: value}
        chat_one = {LANGCHAIN_NAMES.get(k, k): v for k, v in one.items()}
        return {
            "generate": lambda: _answer(decoder.generate(images=images, prompt="Which?", **one)),
            "generate_batch": lambda: _answer(
                decoder.generate_batch([{"images": images, "prompt": "Which?", **one}])[0]
            ),
            "ChatFocus(...)": lambda: text_of(
                ChatFocus(decoder=decoder, **adapter_arguments(ChatFocus, chat_one)).invoke(chat)
            ),
            "ChatFocus.invoke(...)": lambda: text_of(
                chat_focus.invoke(chat, **{LANGCHAIN_NAMES.get(name, name): value})
            ),
            "FocusMultiModalLLM(...)": lambda: text_of(
                FocusMultiModalLLM(decoder=decoder, **adapter_arguments(FocusMultiModalLLM, one)).complete(
                    "Which?", image_documents=documents
                )
            ),
            "FocusMultiModalLLM.complete(...)": lambda: text_of(
                llama.complete("Which?", image_documents=documents, **{name: value})
            ),
        }

    for name, values in BAD_OPTIONS.items():
        for value in values:
            for where, call in calls(name, value).items():
                tally.add(judge(f"every bad option: {where}", f"{name}={value!r}", BAD, call))


def adapter_arguments(adapter: type, options: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of an adapter for engine ``options``: its own fields by name, every other engine
    option in ``generate_kwargs`` (both adapters' documented pass-through); unknown names stay top-level, where
    a misspelling must be refused."""
    from focus_integrations.options import FIELDS

    fields = set(adapter.model_fields)
    passed = {k: v for k, v in options.items() if k not in fields and k in FIELDS}
    named = {k: v for k, v in options.items() if k not in passed}
    return {**named, "generate_kwargs": passed} if passed else named


def run_llama_index(decoder: Any, tally: Tally, examples: int = 25) -> None:
    """FocusMultiModalLLM: constructor options + complete with image documents."""
    from llama_index.core.schema import ImageDocument

    from focus_integrations.llama_index import FocusMultiModalLLM

    documents = [ImageDocument(image=base64.b64encode(png_bytes()).decode()) for _ in range(2)]

    @property_of(option_sets(), examples)
    def options(drawn: tuple[dict, str]) -> None:
        opts, label = drawn

        def call() -> Any:
            llm = FocusMultiModalLLM(decoder=decoder, **adapter_arguments(FocusMultiModalLLM, opts))
            response = llm.complete("Which?", image_documents=documents)
            assert isinstance(response.text, str)
            return response

        tally.add(judge("FocusMultiModalLLM", repr(opts), label, call))

    options()


def run_store(store: Any, tmp: Any, tally: Tally, examples: int = 30) -> None:
    """ImageStore: ingest of good images next to one bad item (none may be lost), and query arguments."""
    from focus_integrations.store import ImageItem

    bad_items = store_bad_items(tmp)
    counter = iter(range(10**6))

    @property_of(st.tuples(st.sampled_from(range(len(bad_items))), st.integers(0, 2)), examples)
    def ingest(drawn: tuple[int, int]) -> None:
        which, position = drawn
        name, make_bad = bad_items[which]
        serial = next(counter)
        goods = [
            ImageItem(good_image(1000 + serial * 3 + i), id=f"good-{serial}-{i}", caption=f"good {i}")
            for i in range(3)
        ]
        items: list[Any] = list(goods)
        items.insert(position, make_bad())

        def call() -> Any:
            report = store.add_images(items)
            stored = {hit.id for hit in store.get([g.id for g in goods])}
            lost = sum(g.id not in stored for g in goods)
            if len(report.failed) == 1:  # the documented refusal of an ingest: the item reported, not stored
                raise Refused(f"reported: {report.failed[0][1][:120]}", lost)
            return Lost(lost)  # stored without a word: an accepted bad input

        tally.add(judge("ImageStore (ingest)", name, BAD, call))

    k_values = [(1, GOOD), (3, GOOD), (0, BAD), (-1, BAD), (True, BAD), (2.5, BAD), ("3", BAD)]
    where_values = [
        (None, GOOD),
        ({"kind": "good"}, GOOD),
        ({"$and": [{"kind": "good"}, {"size": {"$gt": 1}}]}, GOOD),
        ({"$bogus": 1}, BAD),
        ([1, 2], BAD),
        ("kind=good", BAD),
        ({"size": {"$lt": "x"}}, EITHER),
    ]
    texts = st.one_of(
        st.sampled_from(["red", "a green shape", "  ", "", "\ud800", "x" * 5000]), st.text(max_size=20)
    )

    @property_of(st.tuples(texts, st.sampled_from(k_values), st.sampled_from(where_values)), examples)
    def query(drawn: tuple) -> None:
        text, (k, k_label), (where, where_label) = drawn
        text_label = BAD if not text.strip() else EITHER if has_surrogate(text) else GOOD
        label = combine_labels([text_label, k_label, where_label])

        def call() -> Any:
            hits = store.query(text, k=k, where=where)
            assert isinstance(hits, list)
            return hits

        tally.add(judge("ImageStore (query)", f"{text[:20]!r} k={k!r} where={where!r}", label, call))

    ingest()
    query()


def run_images(tally: Tally, examples: int = 60) -> None:
    """load_image over mutated PNG / JPEG / GIF bytes: an image or ImageLoadError, never anything else."""
    from focus_integrations.images import load_image

    @property_of(mutated_images(), examples)
    def fuzz(drawn: tuple[str, bytes]) -> None:
        name, data = drawn

        def call() -> Any:
            image = load_image(data)
            assert image.mode == "RGB" and image.width > 0 and image.height > 0
            return image

        tally.add(judge("load_image (fuzzed bytes)", name, EITHER, call))

    fuzz()


def run_cli(model_path: str, tmp: Any, tally: Tally, examples: int = 10) -> None:
    """``focus ask`` in-process: a documented one-line error (status 2) or an answer, never a traceback."""
    from focus_integrations import cli

    good = tmp / "good.png"
    good_image(3).save(good)
    corrupt = tmp / "corrupt.png"
    corrupt.write_bytes(png_bytes()[:50])
    images = [([str(good)], GOOD), ([str(good), str(corrupt)], BAD), ([str(tmp / "missing.png")], BAD)]
    flags = [
        ([], GOOD),
        (["--alpha", "0.2"], GOOD),
        (["--seed", "3", "--temperature", "0.7"], GOOD),
        (["--mode", "vanilla"], GOOD),
        (["--seed", "-1"], BAD),
        (["--alpha", "inf"], BAD),
        (["--alpha", "abc"], BAD),
        (["--max-new-tokens", "0"], BAD),
        (["--temperature", "nan"], BAD),
        (["--device", "no-such-device"], BAD),
    ]

    @property_of(st.tuples(st.sampled_from(images), st.sampled_from(flags)), examples)
    def ask(drawn: tuple) -> None:
        (paths, image_label), (extra, flag_label) = drawn
        argv = ["ask", "--model", model_path, "--max-new-tokens", "2", *extra, "Which?"]
        for path in paths:
            argv[1:1] = ["--image", path]

        def call() -> Any:
            return run_cli_in_process(cli.main, argv)

        tally.add(
            judge("CLI (focus ask)", " ".join(argv[3:]), combine_labels([image_label, flag_label]), call)
        )

    ask()


class Refused(FocusError):
    """An ingest reported its bad item in ``report.failed`` (the store's documented refusal)."""

    def __init__(self, message: str, lost: int) -> None:
        super().__init__(message)
        self.lost = lost


class CliRefusal(FocusError):
    """The CLI printed its one documented error line and exited with status 2."""


def run_cli_in_process(main: Callable[[list[str]], int], argv: list[str]) -> int:
    """Run the CLI in-process: status 0 is an answer; status 2 with ONE ``focus: error:`` line on stderr is the
    documented refusal (``CliRefusal``); anything else (another status, more lines, a traceback) is a failure.
    Progress-bar redraws (lines holding a carriage return) are not error output."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse's usage error
            status = exit_.code if isinstance(exit_.code, int) else 1
    lines = [line for line in stderr.getvalue().splitlines() if line.strip() and "\r" not in line]
    if status == 0:
        return status
    if status == 2 and len(lines) == 1 and lines[0].startswith("focus: error:"):
        raise CliRefusal(lines[0])
    raise AssertionError(f"status {status}, stderr: {lines[-4:]}")


def _answer(output: Any) -> Any:
    assert isinstance(output.text, str)
    return output


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the warnings adversarial inputs provoke (they are not what is measured)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
