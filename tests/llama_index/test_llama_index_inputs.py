"""FocusMultiModalLLM decodes phone photos upright, from every LlamaIndex image carrier."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.schema import ImageDocument, ImageNode, NodeWithScore

from focus_integrations.llama_index.conversion import chat_messages_to_engine, prompt_to_engine
from focus_integrations.testing.exif import exif_rotated_jpeg, looks_upright, quadrant_picture

UPRIGHT = quadrant_picture()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    data = exif_rotated_jpeg(UPRIGHT, 6)
    path = tmp_path_factory.mktemp("li-exif") / "phone.jpg"
    path.write_bytes(data)
    return data, path


def test_image_blocks_and_documents_are_decoded_upright(photo) -> None:
    data, path = photo
    uri = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    blocks = [ImageBlock(image=data), ImageBlock(path=path), ImageBlock(url=uri)]
    for block in blocks:
        engine = chat_messages_to_engine(
            [ChatMessage(role=MessageRole.USER, blocks=[block, TextBlock(text="q")])]
        )
        assert looks_upright(engine[0]["content"][0]["image"], UPRIGHT)
    documents = [
        ImageDocument(image_path=str(path)),
        ImageNode(image=base64.b64encode(data).decode()),
        NodeWithScore(node=ImageNode(image_path=str(path)), score=1.0),
    ]
    engine = prompt_to_engine("q", documents)
    images = [item["image"] for item in engine[0]["content"] if item["type"] == "image"]
    assert len(images) == 3 and all(looks_upright(image, UPRIGHT) for image in images)


def test_developer_role_is_a_system_turn() -> None:
    engine = chat_messages_to_engine(
        [
            ChatMessage(role=MessageRole.DEVELOPER, content="Be brief."),
            ChatMessage(role=MessageRole.USER, content="hi"),
        ]
    )
    assert engine[0] == {"role": "system", "content": "Be brief."}


def test_logprobs_fill_the_response_s_logprobs(decoder, images) -> None:
    from focus_integrations.llama_index import FocusMultiModalLLM

    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=5, seed=0, top_logprobs=2)
    blocks = [ImageBlock(image=_png(images[0])), ImageBlock(image=_png(images[1])), TextBlock(text="Colour?")]
    response = llm.chat([ChatMessage(role=MessageRole.USER, blocks=blocks)])
    engine = decoder.generate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": images[0]},
                    {"type": "image", "image": images[1]},
                    {"type": "text", "text": "Colour?"},
                ],
            }
        ],
        max_new_tokens=5,
        seed=0,
        top_logprobs=2,
        require_images=False,
    )
    expected = [e for e in engine.logprobs if e.token_id not in decoder.eos_token_ids]
    assert [step[0].token for step in response.logprobs] == [e.token for e in expected]
    assert [step[0].logprob for step in response.logprobs] == [e.logprob for e in expected]
    assert all(
        len(step) in (2, 3) and step[0].bytes == list(step[0].token.encode()) for step in response.logprobs
    )
    assert (
        FocusMultiModalLLM(decoder=decoder, max_new_tokens=2)
        .chat([ChatMessage(role=MessageRole.USER, blocks=blocks)])
        .logprobs
        is None
    )


def test_logprobs_leave_out_the_end_token_the_call_itself_asked_for(decoder, images) -> None:
    # A call's own eos_token_id ends the answer; response.logprobs must drop THAT end token, as it drops a
    # default end (the adapter used to look at the decoder's default end ids only).
    from focus_integrations.llama_index import FocusMultiModalLLM

    llm = FocusMultiModalLLM(decoder=decoder, max_new_tokens=8, seed=0, top_logprobs=1)
    blocks = [ImageBlock(image=_png(images[0])), ImageBlock(image=_png(images[1])), TextBlock(text="Colour?")]
    messages = [ChatMessage(role=MessageRole.USER, blocks=blocks)]
    engine = decoder.generate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": images[0]},
                    {"type": "image", "image": images[1]},
                    {"type": "text", "text": "Colour?"},
                ],
            }
        ],
        max_new_tokens=8,
        seed=0,
        logprobs=True,
    )
    ids = engine.token_ids
    cut = next(i for i in range(1, len(ids)) if ids[i] not in ids[:i])  # the first token not seen before
    ended = llm.chat(messages, eos_token_id=ids[cut])
    assert ended.raw["finish_reason"] == "stop"
    assert [step[0].token for step in ended.logprobs] == [e.token for e in engine.logprobs[:cut]]


def _png(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
