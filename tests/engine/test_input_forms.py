"""Inputs as transformers and OpenAI clients send them: every content form, the developer role, message
objects, and EXIF orientation applied wherever an image is loaded."""

from __future__ import annotations

import base64
import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from focus_integrations import FocusDecoder, ImageLoadError, InvalidOptionError
from focus_integrations.images import load_image
from focus_integrations.messages import prepare
from focus_integrations.testing.exif import exif_rotated_jpeg, looks_upright, quadrant_picture
from focus_integrations.testing.tiny_models import tiny_checkpoint

UPRIGHT = quadrant_picture()


@pytest.fixture(scope="module")
def decoder() -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_5_vl"))


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """A JPEG stored sideways with EXIF orientation 6 (as phones write it): its bytes and its path."""
    data = exif_rotated_jpeg(UPRIGHT, 6)
    path = tmp_path_factory.mktemp("exif") / "phone.jpg"
    path.write_bytes(data)
    return data, str(path)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_loads_upright(orientation: int) -> None:
    data = exif_rotated_jpeg(UPRIGHT, orientation)
    stored = Image.open(io.BytesIO(data))
    if orientation != 1:  # the test images really are stored turned or mirrored
        assert not looks_upright(stored.convert("RGB"), UPRIGHT)
    for form in (data, stored, "data:image/jpeg;base64," + base64.b64encode(data).decode()):
        assert looks_upright(load_image(form), UPRIGHT), (orientation, type(form).__name__)


def test_exif_is_applied_from_paths_and_urls_and_the_input_is_not_modified(photo) -> None:
    data, path = photo
    opened = Image.open(path)
    for form in (path, "file://" + path, opened):
        assert looks_upright(load_image(form), UPRIGHT)
    assert opened.size == (32, 48)  # the caller's object keeps its stored pixels


def test_every_image_form_of_the_chat_format_gives_the_same_pixels(photo) -> None:
    data, path = photo
    b64 = base64.b64encode(data).decode()
    uri = "data:image/jpeg;base64," + b64
    items = [
        {"type": "image", "image": path},
        {"type": "image", "image": Image.open(path)},
        {"type": "image", "image": data},
        {"type": "image", "image": b64},  # transformers' load_image decodes bare base64 text too
        {"type": "image", "url": uri},
        {"type": "image", "url": "file://" + path},
        {"type": "image", "path": path},
        {"type": "image", "base64": b64},
        {"type": "image", "base64": uri, "mime_type": "image/jpeg"},
        {"type": "image_url", "image_url": uri},
        {"type": "image_url", "image_url": {"url": uri, "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "file://" + path, "detail": "low"}},
        {"type": "input_image", "image_url": uri, "detail": "auto"},  # OpenAI Responses API
    ]
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    for item in items:
        conversation = prepare([{"role": "user", "content": [item, {"type": "text", "text": "q"}]}])
        assert conversation.messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "q"}]
        assert np.array_equal(np.asarray(conversation.images[0]), reference), item


def test_tensors_and_arrays_in_channel_first_or_last_layout() -> None:
    upright = np.asarray(UPRIGHT)
    chw = torch.from_numpy(upright.copy()).permute(2, 0, 1)
    for form in (chw, chw.permute(1, 2, 0), chw.float() / 255.0, chw.to(torch.bfloat16)):
        assert looks_upright(load_image(form), UPRIGHT, tolerance=2.0), form.dtype


def test_text_parts_of_openai_and_the_developer_role_render_like_their_plain_forms(decoder) -> None:
    plain = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "image", "image": UPRIGHT}, {"type": "text", "text": "Colour?"}],
        },
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": "Sure?"},
    ]
    openai_style = [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}], "name": None},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": _data_uri(UPRIGHT), "detail": "low"}},
                {"type": "input_text", "text": "Colour?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "output_text", "text": "Red."}], "tool_calls": None},
        {"role": "user", "content": ["Sure?"]},
    ]
    assert decoder.render_prompt(openai_style) == decoder.render_prompt(plain)
    assert "Be brief." in decoder.render_prompt(plain)
    a = decoder.generate(messages=plain, max_new_tokens=4, seed=0)
    b = decoder.generate(messages=openai_style, max_new_tokens=4, seed=0)
    assert a.token_ids == b.token_ids


def test_message_objects_and_json_string_tool_arguments(decoder) -> None:
    from openai.types.chat import ChatCompletionMessage

    @dataclasses.dataclass
    class Turn:  # any dataclass with role/content, as transformers accepts
        role: str
        content: object

    call = {"id": "c1", "type": "function", "function": {"name": "price", "arguments": {"sku": "a1"}}}
    plain = [
        {
            "role": "user",
            "content": [{"type": "image", "image": UPRIGHT}, {"type": "text", "text": "Price?"}],
        },
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "12 dollars"},
    ]
    sdk_answer = ChatCompletionMessage.model_validate(
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{**call, "function": {"name": "price", "arguments": '{"sku": "a1"}'}}],
        }
    )
    objects = [
        Turn("user", [{"type": "image", "image": UPRIGHT}, {"type": "text", "text": "Price?"}]),
        sdk_answer,  # pydantic, with None fields (refusal, audio, function_call...) that must be dropped
        {"role": "tool", "tool_call_id": "c1", "content": "12 dollars"},
    ]
    rendered = decoder.render_prompt(objects)
    assert rendered == decoder.render_prompt(plain)
    assert '"sku": "a1"' in rendered and '\\"sku' not in rendered  # a dict, not a JSON string inside JSON

    class Chat:  # transformers also accepts an object holding the list in `.messages`
        messages = plain

    assert decoder.render_prompt(Chat()) == rendered


def test_bad_forms_are_clear_errors(photo) -> None:
    data, path = photo
    with pytest.raises(InvalidOptionError, match="image_url"):
        prepare([{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}])
    with pytest.raises(ImageLoadError, match="not valid base64"):
        prepare([{"role": "user", "content": [{"type": "image", "base64": "%%%not base64%%%"}]}])
    with pytest.raises(ImageLoadError, match="not found"):
        prepare([{"role": "user", "content": [{"type": "image", "image": path + ".missing"}]}])
    with pytest.raises(InvalidOptionError, match="message 0 must be a dict"):
        prepare([object()])


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "caf\udce9"}],  # an argv or file name with a byte that is not UTF-8
        [{"role": "user", "content": [{"type": "text", "text": "\ud800 lone"}]}],
        [{"role": "system", "content": "x\udcff"}, {"role": "user", "content": "q"}],
    ],
)
def test_text_that_is_not_valid_unicode_is_an_option_error(decoder, messages) -> None:
    with pytest.raises(InvalidOptionError, match="not valid Unicode"):
        decoder.generate(messages=messages, require_images=False, max_new_tokens=1)
    with pytest.raises(InvalidOptionError, match="not valid Unicode"):
        decoder.generate(images=[UPRIGHT, UPRIGHT], prompt="caf\udce9", max_new_tokens=1)


def test_the_engine_decodes_the_photo_upright(decoder, photo) -> None:
    data, path = photo
    upright = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    # What a loader that ignores EXIF sees (fromarray drops the tag, so load_image keeps these pixels).
    sideways = Image.fromarray(np.asarray(Image.open(path).convert("RGB")))
    question = "Which corner is red?"
    reference = decoder.score(images=[upright, UPRIGHT], prompt=question, candidates=["top left"], seed=0)
    assert (
        decoder.score(images=[data, UPRIGHT], prompt=question, candidates=["top left"], seed=0) == reference
    )
    assert (
        decoder.score(images=[path, UPRIGHT], prompt=question, candidates=["top left"], seed=0) == reference
    )
    sideways_score = decoder.score(
        images=[sideways, UPRIGHT], prompt=question, candidates=["top left"], seed=0
    )
    assert sideways_score != reference


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
