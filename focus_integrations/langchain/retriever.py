"""LangChain retrieval over the focus image store, and an LCEL chain that answers with the retrieved images.

    store = ImageStore("./store")
    retriever = FocusImageRetriever(store=store, k=3)
    chain = build_rag_chain(retriever, ChatFocus(model="..."))
    chain.invoke("which pendant is blue?")

Each retrieved image becomes a ``Document`` whose ``page_content`` is its caption and whose metadata carries
``image_id``, ``image_path``, ``distance`` and the record's own fields. :func:`images_to_message` puts the
images into ONE user turn (images first, then the text: the multi-image protocol FOCUS decodes), as v1
``{"type": "image", "base64": ...}`` blocks that any multimodal LangChain chat model reads. Retrieved photos
of one product (or document) share a FOCUS group by default (``group_by="auto"``): their blocks carry
``extras={"group": <product id>}``, which ChatFocus reads (other chat models ignore it).
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from pydantic import ConfigDict, Field

from focus_integrations.errors import ImageLoadError, InvalidOptionError, NoImageError
from focus_integrations.groups import check_group_by, metadata_group_keys
from focus_integrations.store.image_store import ImageHit, ImageStore

IMAGE_ID = "image_id"
IMAGE_PATH = "image_path"
DISTANCE = "distance"

DEFAULT_CAPTION_LINE = "Image {index}: {caption}"


class FocusImageRetriever(BaseRetriever):
    """Retrieves images from an :class:`ImageStore` by text; ``k`` and ``where`` can be overridden per call.

    ``retriever.invoke("blue pendant", k=2, where={"category": "jewellery"})``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: ImageStore
    k: int = Field(default=4, ge=1)
    where: dict[str, Any] | None = None

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        hits = self.store.query(
            query, k=self.k if k is None else k, where=where if where is not None else self.where
        )
        return [hit_to_document(hit) for hit in hits]


def hit_to_document(hit: ImageHit) -> Document:
    metadata = {**hit.metadata, IMAGE_ID: hit.id, IMAGE_PATH: hit.uri}
    if hit.distance is not None:
        metadata[DISTANCE] = hit.distance
    return Document(page_content=hit.caption, metadata=metadata, id=hit.id)


def images_to_message(
    documents: Sequence[Document],
    question: str,
    *,
    include_captions: bool = True,
    caption_line: str = DEFAULT_CAPTION_LINE,
    metadata_fields: Sequence[str] = (),
    group_by: str | None = "auto",
) -> HumanMessage:
    """One user message: the documents' images (in retrieval order) as base64 v1 blocks, then the text.

    ``group_by``: documents that share the value of this metadata field are one FOCUS image group (their
    blocks get ``extras={"group": value}``). ``"auto"`` (default) uses the first of ``product_id``,
    ``document_id``, ``doc_id`` whose value two retrieved images share; ``None`` leaves every image its own.

    With ``include_captions`` the text lists each image's caption (``caption_line`` is formatted with
    ``index`` (1-based), ``caption`` and every metadata field) and, for ``metadata_fields``, ``name: value``
    pairs, before the question. Raises :class:`NoImageError` when there is no document, and
    :class:`ImageLoadError` when a document's image file cannot be read.
    """
    if not documents:
        raise NoImageError(f"no images were retrieved for {question!r}: nothing to answer from")
    blocks: list[dict[str, Any]] = []
    lines: list[str] = []
    groups = metadata_group_keys([document.metadata for document in documents], group_by)
    for index, (document, group) in enumerate(zip(documents, groups), start=1):
        path = document.metadata.get(IMAGE_PATH)
        if not path:
            raise ImageLoadError(f"document {index} has no {IMAGE_PATH!r} in its metadata")
        block = _image_block(Path(path))
        if group is not None:
            block["extras"] = {"group": group}
        blocks.append(block)
        if include_captions:
            fields = {k: v for k, v in document.metadata.items() if k not in ("index", "caption")}
            try:
                line = caption_line.format(index=index, caption=document.page_content, **fields)
            except (KeyError, IndexError, ValueError) as err:
                raise InvalidOptionError(f"caption_line {caption_line!r} cannot be filled: {err}") from None
            extras = [
                f"{name}: {document.metadata[name]}" for name in metadata_fields if name in document.metadata
            ]
            lines.append(line + (f" ({', '.join(extras)})" if extras else ""))
    text = "\n".join(lines) + f"\n\n{question}" if lines else question
    return HumanMessage(content=[*blocks, {"type": "text", "text": text}])


def _image_block(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageLoadError(f"cannot read retrieved image {path}: {err}") from None
    mime_type = mimetypes.guess_type(path.name)[0] or "image/png"
    return {"type": "image", "base64": base64.b64encode(data).decode("ascii"), "mime_type": mime_type}


def build_rag_chain(
    retriever: BaseRetriever,
    chat_model: BaseChatModel | Runnable,
    *,
    system: str | None = None,
    include_captions: bool = True,
    caption_line: str = DEFAULT_CAPTION_LINE,
    metadata_fields: Sequence[str] = (),
    return_sources: bool = False,
    group_by: str | None = "auto",
) -> Runnable:
    """``retriever | images-into-prompt | chat_model | StrOutputParser()`` as one LCEL runnable.

    Input: the question (a string), which is also the retrieval query; or a dict ``{"question": ...,
    "search": ...}`` to retrieve with one text and ask another ("search": "blue decor", "question": "What
    color is the shape in image 2?"). Output: the answer string, or with ``return_sources=True`` a dict
    ``{"question", "search", "documents", "answer"}`` so callers can show which images the answer came from.
    ``group_by`` groups photos of one product (see :func:`images_to_message`).
    """
    check_group_by(group_by)

    def to_messages(inputs: dict[str, Any]) -> list[BaseMessage]:
        message = images_to_message(
            inputs["documents"],
            inputs["question"],
            include_captions=include_captions,
            caption_line=caption_line,
            metadata_fields=metadata_fields,
            group_by=group_by,
        )
        return [SystemMessage(content=system), message] if system else [message]

    answer = RunnableLambda(to_messages, name="images_to_prompt") | chat_model | StrOutputParser()
    gather = RunnableLambda(_question_and_search, name="question_and_search") | RunnablePassthrough.assign(
        documents=itemgetter("search") | retriever
    )
    if return_sources:
        return gather | RunnablePassthrough.assign(answer=answer)
    return gather | answer


def _question_and_search(inputs: str | Mapping[str, Any]) -> dict[str, str]:
    if isinstance(inputs, str):
        return {"question": inputs, "search": inputs}
    if isinstance(inputs, Mapping) and isinstance(inputs.get("question"), str):
        search = inputs.get("search", inputs["question"])
        if not isinstance(search, str):
            raise InvalidOptionError(f"'search' must be a string, got {type(search).__name__}")
        return {"question": inputs["question"], "search": search}
    raise InvalidOptionError('the RAG chain takes a question string or {"question": str, "search": str}')


__all__ = ["FocusImageRetriever", "hit_to_document", "images_to_message", "build_rag_chain"]
