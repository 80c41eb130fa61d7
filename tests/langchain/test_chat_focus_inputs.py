"""ChatFocus decodes phone photos upright, whichever LangChain block carries them."""

from __future__ import annotations

import base64

import pytest
from langchain_core.messages import ChatMessage, HumanMessage

from focus_integrations.langchain._messages import ImagePolicy, to_engine_messages
from focus_integrations.testing.exif import exif_rotated_jpeg, looks_upright, quadrant_picture

UPRIGHT = quadrant_picture()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    data = exif_rotated_jpeg(UPRIGHT, 6)
    path = tmp_path_factory.mktemp("lc-exif") / "phone.jpg"
    path.write_bytes(data)
    return base64.b64encode(data).decode(), str(path)


def test_every_image_block_form_is_decoded_upright(photo) -> None:
    b64, path = photo
    uri = "data:image/jpeg;base64," + b64
    blocks = [
        {"type": "image", "base64": b64, "mime_type": "image/jpeg"},
        {"type": "image", "url": uri},
        {"type": "image", "url": "file://" + path},
        {"type": "image", "source_type": "base64", "data": b64, "mime_type": "image/jpeg"},
        {"type": "image_url", "image_url": {"url": uri, "detail": "high"}},
        {"type": "image_url", "image_url": uri},
        {"type": "input_image", "image_url": uri},
        {"type": "file", "base64": b64, "mime_type": "image/jpeg"},
    ]
    for block in blocks:
        engine = to_engine_messages(
            [HumanMessage(content=[block, {"type": "text", "text": "q"}])], ImagePolicy()
        )
        image = engine[0]["content"][0]["image"]
        assert looks_upright(image, UPRIGHT), block["type"]


def test_developer_role_is_a_system_turn() -> None:
    engine = to_engine_messages(
        [ChatMessage(role="developer", content="Be brief."), HumanMessage(content="hi")], ImagePolicy()
    )
    assert engine[0] == {"role": "system", "content": "Be brief."}
