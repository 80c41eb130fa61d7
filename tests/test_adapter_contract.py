"""Both adapters' constructors: the same error type, with the same message, for the same mistake."""

from __future__ import annotations

import pytest

from focus_integrations.errors import InvalidOptionError
from focus_integrations.testing.tiny_models import tiny_checkpoint

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

MISTAKES = [
    ({"alpah": 0.3}, "alpah"),
    ({"alpha": float("inf")}, "alpha must be a finite number"),
    ({"alpha": "0.5"}, "alpha must be a finite number"),
    ({"top_k": True}, "top_k must be an integer"),
    ({"temperature": float("nan")}, "temperature must be a finite number"),
    ({"seed": -1}, "seed must be an integer in 0..2\\*\\*64-1"),
    ({"do_sample": "false"}, "do_sample must be True or False"),
    ({"noise": ["gray"]}, "unknown noise mode"),
    ({"noise_severity": 0}, "noise_severity must be an integer in 1..5"),
    ({"stop": 5}, "stop must be"),
    ({"device": "tpu"}, "unknown device"),
    ({"chat_template_kwargs": {"tokenize": True}}, "cannot set tokenize"),
]


@pytest.fixture(scope="module")
def decoder():
    from focus_integrations import FocusDecoder

    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_vl"))


@pytest.mark.parametrize("kwargs, message", MISTAKES)
def test_the_same_mistake_is_the_same_error_in_both_adapters(decoder, kwargs, message) -> None:
    from focus_integrations.langchain import ChatFocus
    from focus_integrations.llama_index import FocusMultiModalLLM

    model = str(tiny_checkpoint("qwen2_vl"))
    field = dict(kwargs)
    if "do_sample" in field:  # ChatFocus has no do_sample field: the same option goes in generate_kwargs
        field = {"generate_kwargs": field}
    with pytest.raises(InvalidOptionError, match=message) as langchain_error:
        ChatFocus(model=model, **field)
    with pytest.raises(InvalidOptionError, match=message) as llama_index_error:
        FocusMultiModalLLM(model, **kwargs)
    assert type(langchain_error.value) is type(llama_index_error.value) is InvalidOptionError


# ------------------------------------------------------------------------------ the same answer, both ways


def _png(colour: str) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "PNG")
    return buffer.getvalue()


IMAGES = [_png(c) for c in ("red", "blue", "green")]
GROUPS = ["sku-1", "sku-1", None]  # the first two photos are one product


def _answers(decoder, chat_fields: dict, llm_fields: dict, call: dict, *, grouped: bool = False):
    """One request through ChatFocus, FocusMultiModalLLM and the engine itself: the three texts."""
    import base64

    from langchain_core.messages import HumanMessage
    from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock

    from focus_integrations.langchain import ChatFocus
    from focus_integrations.llama_index import FocusMultiModalLLM, GroupedImageBlock

    groups = GROUPS if grouped else [None] * len(IMAGES)
    blocks: list = [{"type": "text", "text": "What colour is image 2?"}]
    li_blocks: list = [TextBlock(text="What colour is image 2?")]
    items: list = [{"type": "text", "text": "What colour is image 2?"}]
    for data, group in zip(IMAGES, groups):
        extra = {"group": group} if group else {}
        blocks.append(
            {"type": "image", "base64": base64.b64encode(data).decode(), "mime_type": "image/png", **extra}
        )
        li_blocks.append(GroupedImageBlock(image=data, group=group) if group else ImageBlock(image=data))
        items.append({"type": "image", "image": data, **extra})
    chat = ChatFocus(decoder=decoder, **chat_fields).invoke([HumanMessage(content=blocks)], **call)
    llm = FocusMultiModalLLM(decoder=decoder, **llm_fields).chat(
        [ChatMessage(role="user", blocks=li_blocks)], **call
    )
    engine_options = {"max_new_tokens": chat_fields.get("max_tokens")} | {
        k: v for k, v in chat_fields.items() if k not in ("max_tokens", "generate_kwargs")
    }
    engine_options = {k: v for k, v in engine_options.items() if v is not None} | call
    engine = decoder.generate(
        messages=[{"role": "user", "content": items}], require_images=False, **engine_options
    )
    return chat.content, llm.message.content, engine.text


ANSWER_CASES = {
    "greedy": ({"max_tokens": 6, "temperature": 0}, {}),
    "call max_tokens": ({}, {"max_tokens": 4}),
    "call temperature 0": ({"max_tokens": 5}, {"temperature": 0}),
    "sampling with a seed": ({"max_tokens": 5, "temperature": 0.8}, {}),
    "vanilla": ({"max_tokens": 5, "mode": "vanilla"}, {}),
    "alpha table": ({"max_tokens": 5, "alpha": {3: 0.5}}, {}),
    "n-calibrated": ({"max_tokens": 5}, {"alpha": "n-calibrated"}),
}


@pytest.mark.parametrize("case", list(ANSWER_CASES))
def test_the_same_request_is_the_same_answer_in_both_adapters_and_the_engine(decoder, case) -> None:
    fields, call = ANSWER_CASES[case]
    fields = {"seed": 0} | fields  # the noise images are drawn from the seed
    llm_fields = {("max_new_tokens" if k == "max_tokens" else k): v for k, v in fields.items()}
    chat, llm, engine = _answers(decoder, fields, llm_fields, call)
    assert chat == llm == engine


def test_image_groups_are_the_same_answer_in_both_adapters_and_the_engine(decoder) -> None:
    fields = {"seed": 0, "max_tokens": 6}
    chat, llm, engine = _answers(decoder, fields, {"seed": 0, "max_new_tokens": 6}, {}, grouped=True)
    assert chat == llm == engine
    grouped = decoder.generate(
        messages=[{"role": "user", "content": [{"type": "image", "image": IMAGES[0], "group": "g"}]}],
        max_new_tokens=1,
    )
    assert grouped.settings["n_groups"] == 1


def test_a_named_field_beats_the_same_option_in_generate_kwargs_in_both_adapters(decoder) -> None:
    # generate_kwargs lies below the named fields, under any of the option's names (max_tokens here).
    chat, llm, engine = _answers(
        decoder,
        {"seed": 0, "max_tokens": 3, "generate_kwargs": {"max_tokens": 7}},
        {"seed": 0, "max_new_tokens": 3, "generate_kwargs": {"max_tokens": 7}},
        {},
    )
    assert chat == llm == engine


def test_one_stop_string_is_one_stop_in_both_constructors(decoder) -> None:
    full = _answers(decoder, {"seed": 0, "max_tokens": 8}, {"seed": 0, "max_new_tokens": 8}, {})[2]
    stop = full[2]  # a character the answer really reaches: the answer must end just before it
    chat, llm, engine = _answers(
        decoder,
        {"seed": 0, "max_tokens": 8, "stop": stop},
        {"seed": 0, "max_new_tokens": 8, "stop": stop},
        {},
    )
    assert chat == llm == engine == full[: full.index(stop)]


@pytest.mark.parametrize("sampling", [{}, {"fps": 2.0}], ids=["request sampling", "the block's own fps"])
def test_a_video_is_the_same_answer_in_both_adapters_and_the_engine(decoder, tmp_path, sampling) -> None:
    """A video block (LangChain v1 ``video``, LlamaIndex ``VideoBlock``) is sampled as the engine samples a
    video item: the same frames, the same answer; a block's own ``fps`` applies to that video in both."""
    pytest.importorskip("av")
    import base64

    from langchain_core.messages import HumanMessage
    from llama_index.core.base.llms.types import ChatMessage, TextBlock, VideoBlock

    from focus_integrations.langchain import ChatFocus
    from focus_integrations.llama_index import FocusMultiModalLLM
    from focus_integrations.testing.videos import make_test_video

    video = make_test_video(tmp_path / "clip.mp4", num_frames=12, fps=6)
    fields = {"seed": 0, "num_frames": 6}
    chat = ChatFocus(decoder=decoder, max_tokens=5, **fields).invoke(
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "What happens?"},
                    {
                        "type": "video",
                        "base64": base64.b64encode(video).decode(),
                        "mime_type": "video/mp4",
                        **sampling,
                    },
                ]
            )
        ]
    )
    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=5, **fields).chat(
        [
            ChatMessage(
                role="user", blocks=[TextBlock(text="What happens?"), VideoBlock(video=video, **sampling)]
            )
        ]
    )
    engine = decoder.generate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What happens?"},
                    {"type": "video", "video": video, **sampling},
                ],
            }
        ],
        max_new_tokens=5,
        **fields,
    )
    frames = 4 if sampling else 6  # 12 frames at 6 fps: 2 s; at 2 fps that is 4 frames (under the cap of 6)
    assert engine.settings["n_images"] == frames
    assert chat.response_metadata["focus"]["n_images"] == llm.raw["settings"]["n_images"] == frames
    assert chat.content == llm.message.content == engine.text


def test_a_timeout_is_the_same_contract_in_both_adapters(decoder) -> None:
    """``timeout`` (field or per call): checked between tokens, ``RequestTimeoutError`` when it passes; a bad
    value is an ``InvalidOptionError`` at once; a generous one changes nothing."""
    from langchain_core.messages import HumanMessage
    from llama_index.core.base.llms.types import ChatMessage

    from focus_integrations.errors import RequestTimeoutError
    from focus_integrations.langchain import ChatFocus
    from focus_integrations.llama_index import FocusMultiModalLLM

    chat = ChatFocus(decoder=decoder, max_tokens=20, seed=0)
    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=20, seed=0)
    question_lc, question_li = [HumanMessage("hi")], [ChatMessage(role="user", content="hi")]
    with pytest.raises(RequestTimeoutError):
        chat.invoke(question_lc, timeout=1e-9)
    with pytest.raises(RequestTimeoutError):
        llm.chat(question_li, timeout=1e-9)
    with pytest.raises(RequestTimeoutError):
        list(llm.stream_chat(question_li, timeout=1e-9))
    with pytest.raises(RequestTimeoutError):
        FocusMultiModalLLM(decoder=decoder, max_new_tokens=20, timeout=1e-9).complete("hi")
    for bad in (0, -1, float("nan"), "5", True):
        with pytest.raises(InvalidOptionError, match="timeout must be a number of seconds"):
            ChatFocus(decoder=decoder, timeout=bad)
        with pytest.raises(InvalidOptionError, match="timeout must be a number of seconds"):
            FocusMultiModalLLM(decoder=decoder, timeout=bad)
        with pytest.raises(InvalidOptionError, match="timeout must be a number of seconds"):
            llm.chat(question_li, timeout=bad)
    relaxed = llm.chat(question_li, timeout=600).message.content
    assert relaxed == llm.chat(question_li).message.content == chat.invoke(question_lc, timeout=600).content


@pytest.fixture
def image_host():
    """A loopback HTTP server standing in for a remote image host: GET returns a 32x32 PNG."""
    import http.server
    import threading

    png = IMAGES[0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/photo.png"
    server.shutdown()
    server.server_close()


def test_remote_image_permission_is_the_engine_s_in_both_adapters(decoder, image_host) -> None:
    """``allow_remote_images`` takes what the engine takes (True, False, ``RemoteImages(...)`` with its own
    limits) and nothing else: ``"yes"`` or ``1`` must not switch remote fetching on."""
    from langchain_core.messages import HumanMessage
    from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock

    from focus_integrations.errors import RemoteImageError
    from focus_integrations.images import RemoteImages
    from focus_integrations.langchain import ChatFocus
    from focus_integrations.llama_index import FocusMultiModalLLM

    lc_question = [
        HumanMessage(content=[{"type": "image", "url": image_host}, {"type": "text", "text": "q"}])
    ]
    li_question = [ChatMessage(role="user", blocks=[ImageBlock(url=image_host), TextBlock(text="q")])]
    for bad in ("yes", 1, "false", None):
        with pytest.raises(InvalidOptionError, match="allow_remote_images"):
            ChatFocus(decoder=decoder, allow_remote_images=bad)
        with pytest.raises(InvalidOptionError, match="allow_remote_images"):
            FocusMultiModalLLM(decoder=decoder, allow_remote_images=bad)
    tight = RemoteImages(max_bytes=16)  # smaller than the photo: the limit is the permission's own
    with pytest.raises(RemoteImageError):
        ChatFocus(decoder=decoder, allow_remote_images=tight, max_tokens=2).invoke(lc_question)
    with pytest.raises(RemoteImageError):
        FocusMultiModalLLM(decoder=decoder, allow_remote_images=tight, max_new_tokens=2).chat(li_question)
    allowed = RemoteImages(timeout=30.0)
    chat = ChatFocus(decoder=decoder, allow_remote_images=allowed, max_tokens=3, seed=0).invoke(lc_question)
    llm = FocusMultiModalLLM(decoder=decoder, allow_remote_images=allowed, max_new_tokens=3, seed=0).chat(
        li_question
    )
    assert chat.content == llm.message.content and chat.response_metadata["focus"]["n_images"] == 1
