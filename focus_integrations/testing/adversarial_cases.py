"""The values and hypothesis strategies of the adversarial cases (judged and run by ``adversarial.py``).

Every value carries its label: ``GOOD`` must answer, ``BAD`` must be refused with a documented
:class:`~focus_integrations.errors.FocusError`, ``EITHER`` may do either. Needs the ``test`` extra (hypothesis).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st
from PIL import Image

GOOD, BAD, EITHER = "good", "bad", "either"  # EITHER: an answer and a documented error are both fine


def combine_labels(labels: list[str]) -> str:
    """The label of a case made of several values: bad if any is bad, else either if any is either."""
    return BAD if BAD in labels else (EITHER if EITHER in labels else GOOD)


def png_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: int = 28, fmt: str = "PNG") -> bytes:
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
    "noise_severity": [1, 5],
    "min_new_tokens": [0, 1],
    "min_p": [0.05],
    "typical_p": [0.9],
    "epsilon_cutoff": [0.0, 3e-4],
    "eta_cutoff": [0.0, 1e-3],
    "no_repeat_ngram_size": [0, 2],
    "suppress_tokens": [[1], 2],
    "bad_words_ids": [[[3]], [[3, 4]]],
    "eos_token_id": [[2], 5],
    "logprobs": [False, True],
    "top_logprobs": [1, 3],
    "chat_template_kwargs": [{}],
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
    "noise_severity": [0, 6, 2.5, True, "3"],
    "max_length": [0, -1, True, 2.5],
    "min_new_tokens": [-1, 1.5, True, NAN],
    "min_length": [-1, "2"],
    "min_p": [-0.1, 1.5, NAN],
    "typical_p": [0.0, 1.5, NAN],
    "epsilon_cutoff": [-0.1, 1.0, NAN],
    "eta_cutoff": [1.0, -1.0, INF],
    "no_repeat_ngram_size": [-1, 1.5, True],
    # token ids: wrong types, negative, and ids the model's vocabulary does not have (an index error deep in
    # torch if they reach the logits)
    "suppress_tokens": [[-1], [10**9], "x", [1.5], []],
    "bad_words_ids": [[5], [[-1]], [[10**9]], "x", [[]]],
    "eos_token_id": [-1, [True], "x", 2**70],
    "pad_token_id": [-1, "x", 1.5],
    "chat_template_kwargs": ["x", [1], {"tokenize": True}],
    "num_frames": [0, -1, True],
    "fps": [0, -1.0, INF, NAN],
    "video_masking": ["bogus", 1],
    "response_format": [
        "json",
        5,
        {"type": "bogus"},
        {"type": "json_schema"},
        {"type": "regex", "regex": "("},
    ],
    "logprobs": ["yes", 1],
    "top_logprobs": [-1, 1.5, True, "2"],
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
    png = png_bytes()
    return [
        ("text", lambda: {"type": "text", "text": "Which image is red?"}, GOOD),
        ("plain string", lambda: "Describe them.", GOOD),
        ("PIL image", lambda: {"type": "image", "image": good_image(1)}, GOOD),
        ("PNG bytes", lambda: {"type": "image", "image": png}, GOOD),
        ("JPEG bytes", lambda: {"type": "image", "image": png_bytes(fmt="JPEG")}, GOOD),
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
    return turns, combine_labels(labels), " ".join(names)


# ------------------------------------------------------------------------------------------ fuzzed images


def base_images() -> dict[str, bytes]:
    """Small valid images of the formats the fuzzer mutates."""
    frames = [Image.new("P", (12, 10), i) for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    return {"png": png_bytes(size=16), "jpeg": png_bytes(size=16, fmt="JPEG"), "gif": gif.getvalue()}


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


def store_bad_items(tmp: Any) -> list[tuple[str, Callable[[], Any]]]:
    from focus_integrations.store import ImageItem

    png = png_bytes((10, 200, 10))
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


def has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True
