"""Adversarial cases for every entry point, shared by the test suite and ``scripts/reliability_report.py``.

Each case is drawn by hypothesis (``derandomize=True``: the same cases on every run) from pools of good and
bad values, and judged by :func:`judge`: the call runs on a helper thread with a deadline and ends as

* ``answer``     it returned (a failure when the case holds a bad value: an accepted bad input),
* ``error``      a documented :class:`~focus_integrations.errors.FocusError` subclass,
* ``traceback``  any other exception (what a user would see as a raw traceback),
* ``hang``       still running at the deadline.

Store cases also count good images lost to a bad neighbour. Needs the ``test`` extra (hypothesis).
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from focus_integrations.errors import FocusError

CASE_DEADLINE_S = (
    60.0  # a case still running after this is a hang (tiny models answer in well under a second)
)

GOOD, BAD, EITHER = "good", "bad", "either"  # EITHER: an answer and a documented error are both fine


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
                    "good images lost": sum(o.lost_good for o in mine),
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
        lost = value if isinstance(value, _Lost) else None
        return Outcome(entry, case, label, "answer", seconds, "", lost.count if lost else 0)
    if isinstance(error, FocusError):
        lost_good = error.lost if isinstance(error, _Refused) else 0
        shown = f"{type(error).__name__}: {str(error)[:160]}"
        return Outcome(entry, case, label, "error", seconds, shown, lost_good)
    if isinstance(error, SystemExit) and error.code == 2:  # argparse's usage error: one line, status 2
        return Outcome(entry, case, label, "error", seconds, "usage error (status 2)")
    return Outcome(entry, case, label, "traceback", seconds, f"{type(error).__name__}: {str(error)[:160]}")


@dataclass
class _Lost:
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


# ------------------------------------------------------------------------------------------------- values


def _png(colour: tuple[int, int, int] = (200, 30, 30), size: int = 28, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def good_image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8))


INF, NAN = math.inf, math.nan

#: Engine option values that must work (each alone; combinations are drawn).
GOOD_OPTIONS: dict[str, list[Any]] = {
    "mode": ["focus", "vanilla", "vcd"],
    "alpha": [0.0, 0.1, 1.0, 2.5],
    "noise": ["imagenet+uniform", "gaussian", "uniform", "gray"],
    "noise_scale": [0.0, 0.5, 1.0],
    "do_sample": [False, True],
    "temperature": [0.5, 1.0, 1.7],
    "top_k": [0, 1, 5],
    "top_p": [0.5, 1.0],
    "repetition_penalty": [1.0, 1.3],
    "stop": [["\n"], ["END"], "END"],
    "seed": [0, 7, 2**31 - 1],
    "fresh_noise": [False, True],
    "shared_vision": [True, False],
    "share_prefix": [True, False],
    "row_chunk_size": [1, 2],
    "plausibility_beta": [0.1, 0.5],
}

#: Engine option values that must be refused with InvalidOptionError (the issue's class 2 and their siblings).
BAD_OPTIONS: dict[str, list[Any]] = {
    "mode": ["greedy", 1],
    "alpha": [-1.0, INF, NAN, "0.1", True],
    "noise": [["gray"], "no-such-noise", 3],
    "noise_scale": [-0.5, INF, NAN],
    "do_sample": ["false", 1],
    "temperature": [-1.0, INF, NAN, "1"],
    "top_k": [True, -3, 2.5, "5"],  # 0 is valid: "no top-k", as in transformers' generate
    "top_p": [0.0, 1.5, NAN],
    "repetition_penalty": [0.0, -1.0, INF, NAN],
    "stop": [5, [5]],
    "seed": [-1, 2**70, 1.5, "7", True],
    "row_chunk_size": [0, -1, 1.5, True],
    "plausibility_beta": [-0.1, 1.5, NAN],
    "max_new_tokens": [0, -1, 2.5, True, "3"],
    "alhpa": [0.1],  # a misspelled option must not be dropped silently
}


def _noise_modes() -> list[str]:
    from focus_integrations.noise import NOISE_MODES

    return [name for name in GOOD_OPTIONS["noise"] if name in NOISE_MODES] or list(NOISE_MODES)[:2]


@st.composite
def option_sets(
    draw: Any, names: dict[str, str] | None = None, drop: tuple[str, ...] = ()
) -> tuple[dict, str]:
    """(options, label): a few good options, and with probability 1/2 one bad one. ``names`` renames options
    for an adapter (engine name -> adapter name); options in ``drop`` are not drawn."""
    good_names = sorted(k for k in GOOD_OPTIONS if k not in drop)
    chosen = draw(st.lists(st.sampled_from(good_names), max_size=4, unique=True))
    options: dict[str, Any] = {}
    for name in chosen:
        pool = _noise_modes() if name == "noise" else GOOD_OPTIONS[name]
        options[name] = draw(st.sampled_from(pool))
    label = GOOD
    if draw(st.booleans()):
        bad_name = draw(st.sampled_from(sorted(k for k in BAD_OPTIONS if k not in drop)))
        options[bad_name] = draw(st.sampled_from(BAD_OPTIONS[bad_name]))
        label = BAD
    options.setdefault("max_new_tokens", 3)
    renamed = {(names or {}).get(k, k): v for k, v in options.items()}
    return renamed, label


# Content blocks of the engine's message format, each with its label.
def _content_blocks() -> list[tuple[str, Callable[[], Any], str]]:
    png = _png()
    return [
        ("text", lambda: {"type": "text", "text": "Which image is red?"}, GOOD),
        ("plain string", lambda: "Describe them.", GOOD),
        ("PIL image", lambda: {"type": "image", "image": good_image(1)}, GOOD),
        ("PNG bytes", lambda: {"type": "image", "image": png}, GOOD),
        ("JPEG bytes", lambda: {"type": "image", "image": _png(fmt="JPEG")}, GOOD),
        (
            "data URI",
            lambda: {"type": "image", "url": "data:image/png;base64," + base64.b64encode(png).decode()},
            GOOD,
        ),
        ("uint8 array", lambda: {"type": "image", "image": np.zeros((20, 24, 3), np.uint8)}, GOOD),
        ("text with a lone surrogate", lambda: {"type": "text", "text": "why \ud800?"}, EITHER),
        ("text with NUL", lambda: {"type": "text", "text": "a\x00b"}, EITHER),
        ("image without source", lambda: {"type": "image"}, BAD),
        ("unknown block type", lambda: {"type": "audio", "audio": b"RIFF"}, BAD),
        ("image as int", lambda: {"type": "image", "image": 7}, BAD),
        ("corrupt PNG", lambda: {"type": "image", "image": png[:40]}, BAD),
        ("NaN array", lambda: {"type": "image", "image": np.full((8, 8, 3), np.nan)}, BAD),
        ("2-channel array", lambda: {"type": "image", "image": np.zeros((8, 8, 2), np.uint8)}, BAD),
        ("zero-size image", lambda: {"type": "image", "image": Image.new("RGB", (0, 0))}, BAD),
        (
            "remote URL (refused by default)",
            lambda: {"type": "image", "url": "http://127.0.0.1:9/a.png"},
            BAD,
        ),
        ("missing file", lambda: {"type": "image", "image": "/nonexistent/x.png"}, BAD),
        ("bad data URI", lambda: {"type": "image", "url": "data:image/png;base64,!!!"}, BAD),
        ("block without type", lambda: {"text": "hi"}, BAD),
        ("None block", lambda: None, BAD),
    ]


CONTENT_BLOCKS = _content_blocks()
ROLES = [("user", GOOD), ("system", EITHER), ("assistant", EITHER), ("wizard", BAD), (None, BAD)]


def _combine(labels: list[str]) -> str:
    return BAD if BAD in labels else (EITHER if EITHER in labels else GOOD)


@st.composite
def message_lists(draw: Any) -> tuple[list[dict], str, str]:
    """(messages, label, description): one to three turns of drawn content blocks, ending with a user turn."""
    turns, labels, names = [], [], []
    for position in range(draw(st.integers(1, 3))):
        last = position == 0
        role, role_label = ("user", GOOD) if last else draw(st.sampled_from(ROLES))
        if draw(st.integers(0, 9)) == 0:
            content, content_label, shown = draw(
                st.sampled_from([(5, BAD, "int content"), ("", EITHER, "empty")])
            )
            labels.append(content_label)
            names.append(shown)
        else:
            picks = draw(st.lists(st.sampled_from(range(len(CONTENT_BLOCKS))), min_size=1, max_size=4))
            content = [CONTENT_BLOCKS[i][1]() for i in picks]
            labels += [CONTENT_BLOCKS[i][2] for i in picks]
            names += [CONTENT_BLOCKS[i][0] for i in picks]
        labels.append(role_label)
        turns.insert(0, {"role": role, "content": content})
        names.insert(0, f"[{role}]")
    return turns, _combine(labels), " ".join(names)


# ------------------------------------------------------------------------------------------ fuzzed images


def base_images() -> dict[str, bytes]:
    """Small valid images of the formats the fuzzer mutates."""
    frames = [Image.new("P", (12, 10), i) for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    return {"png": _png(size=16), "jpeg": _png(size=16, fmt="JPEG"), "gif": gif.getvalue()}


@st.composite
def mutated_images(draw: Any) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(sorted(base_images())))
    data = bytearray(base_images()[fmt])
    kind = draw(st.sampled_from(["flip bytes", "truncate", "insert", "header size"]))
    if kind == "flip bytes":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=32))
    else:  # the width/height bytes of the header: huge or zero dimensions
        offset = {"png": 16, "gif": 6, "jpeg": draw(st.integers(100, 170))}[fmt]
        data[offset : offset + 4] = draw(
            st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\x00\x01"])
        )
    return f"{fmt}: {kind}", bytes(data)


# ------------------------------------------------------------------------------------------------ runners


def _property(
    strategy: Any, examples: int, seed_name: str
) -> Callable[[Callable[[Any], None]], Callable[[], None]]:
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

    @_property(option_sets(), examples, "engine-options")
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

    @_property(message_lists(), examples, "engine-messages")
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
        return {"type": "image", "base64": base64.b64encode(_png()).decode(), "mime_type": "image/png"}

    @_property(option_sets(LANGCHAIN_NAMES, LANGCHAIN_DROP), examples, "langchain-options")
    def options(drawn: tuple[dict, str]) -> None:
        opts, label = drawn

        def call() -> Any:
            llm = ChatFocus(decoder=decoder, **opts)
            message = llm.invoke([HumanMessage(content=[image_block(), image_block(), "Which?"])])
            assert isinstance(message.content, str)
            return message

        tally.add(judge("ChatFocus", repr(opts), label, call))

    options()


def run_llama_index(decoder: Any, tally: Tally, examples: int = 25) -> None:
    """FocusMultiModalLLM: constructor options + complete with image documents."""
    from llama_index.core.schema import ImageDocument

    from focus_integrations.llama_index import FocusMultiModalLLM

    documents = [ImageDocument(image=base64.b64encode(_png()).decode()) for _ in range(2)]

    @_property(option_sets(), examples, "llama-index-options")
    def options(drawn: tuple[dict, str]) -> None:
        opts, label = drawn

        def call() -> Any:
            llm = FocusMultiModalLLM(decoder=decoder, **opts)
            response = llm.complete("Which?", image_documents=documents)
            assert isinstance(response.text, str)
            return response

        tally.add(judge("FocusMultiModalLLM", repr(opts), label, call))

    options()


def _store_bad_items(tmp: Any) -> list[tuple[str, Callable[[], Any]]]:
    from focus_integrations.store import ImageItem

    png = _png((10, 200, 10))
    return [
        ("not an image source", lambda: 42),
        ("dict without image", lambda: {"caption": "x"}),
        ("corrupt bytes", lambda: ImageItem(png[:30], id="corrupt")),
        ("empty bytes", lambda: ImageItem(b"", id="empty")),
        ("lone-surrogate caption", lambda: ImageItem(png, id="sur", caption="bad \udc80")),
        ("lone-surrogate id", lambda: ImageItem(png, id="id\ud800")),
        ("empty id", lambda: ImageItem(png, id="")),
        ("caption not a string", lambda: ImageItem(png, id="cap", caption=7)),
        ("reserved metadata key", lambda: ImageItem(png, id="meta", metadata={"focus_sha256": "x"})),
        ("non-finite metadata", lambda: ImageItem(png, id="nan", metadata={"price": NAN})),
        ("surrogate metadata value", lambda: ImageItem(png, id="mv", metadata={"brand": "\udcff"})),
        ("missing file", lambda: str(tmp / "nope.png")),
        ("remote URL", lambda: "https://127.0.0.1:9/x.png"),
        ("zero-size PIL image", lambda: ImageItem(Image.new("RGB", (0, 0)), id="zero")),
        ("NaN array", lambda: ImageItem(np.full((4, 4, 3), np.nan), id="nanarr")),
    ]


def run_store(store: Any, tmp: Any, tally: Tally, examples: int = 30) -> None:
    """ImageStore: ingest of good images next to one bad item (none may be lost), and query arguments."""
    from focus_integrations.store import ImageItem

    bad_items = _store_bad_items(tmp)
    counter = iter(range(10**6))

    @_property(st.tuples(st.sampled_from(range(len(bad_items))), st.integers(0, 2)), examples, "store-ingest")
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
                raise _Refused(f"reported: {report.failed[0][1][:120]}", lost)
            return _Lost(lost)  # stored without a word: an accepted bad input

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

    @_property(
        st.tuples(texts, st.sampled_from(k_values), st.sampled_from(where_values)), examples, "store-query"
    )
    def query(drawn: tuple) -> None:
        text, (k, k_label), (where, where_label) = drawn
        text_label = BAD if not text.strip() else EITHER if _has_surrogate(text) else GOOD
        label = _combine([text_label, k_label, where_label])

        def call() -> Any:
            hits = store.query(text, k=k, where=where)
            assert isinstance(hits, list)
            return hits

        tally.add(judge("ImageStore (query)", f"{text[:20]!r} k={k!r} where={where!r}", label, call))

    ingest()
    query()


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def run_images(tally: Tally, examples: int = 60) -> None:
    """load_image over mutated PNG / JPEG / GIF bytes: an image or ImageLoadError, never anything else."""
    from focus_integrations.images import load_image

    @_property(mutated_images(), examples, "fuzzed-images")
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
    corrupt.write_bytes(_png()[:50])
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

    @_property(st.tuples(st.sampled_from(images), st.sampled_from(flags)), examples, "cli")
    def ask(drawn: tuple) -> None:
        (paths, image_label), (extra, flag_label) = drawn
        argv = ["ask", "--model", model_path, "--max-new-tokens", "2", *extra, "Which?"]
        for path in paths:
            argv[1:1] = ["--image", path]

        def call() -> Any:
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                status = cli.main(argv)
            lines = stderr.getvalue().strip().splitlines()
            if status == 2:
                if len(lines) != 1 or not lines[0].startswith("focus: error:"):
                    raise AssertionError(f"error output is not one line: {lines[:4]}")
                raise _CliError(lines[0])
            return status

        tally.add(judge("CLI (focus ask)", " ".join(argv[3:]), _combine([image_label, flag_label]), call))

    ask()


class _Refused(FocusError):
    """An ingest reported its bad item in ``report.failed`` (the store's documented refusal)."""

    def __init__(self, message: str, lost: int) -> None:
        super().__init__(message)
        self.lost = lost


class _CliError(FocusError):
    """The CLI printed its one documented error line and exited with status 2."""


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
