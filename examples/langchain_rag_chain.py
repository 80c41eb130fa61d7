"""Multimodal RAG with LangChain (LCEL), offline: retrieve catalog images from Chroma, answer with FOCUS.

    python examples/langchain_rag_chain.py
    python examples/langchain_rag_chain.py --search "cheap decor" --slot 3 --ask shape
    python examples/langchain_rag_chain.py --model /models/Qwen2.5-VL-3B-Instruct --captions \\
        --question "Which of these products would suit a child's room, and why?"

The chain is ``FocusImageRetriever | images_to_message | ChatFocus | StrOutputParser``: ``--search`` retrieves
the ``k`` nearest products (MiniLM over captions and metadata, the offline default embedder), all their images
go into one user turn, and ChatFocus decodes the answer with FOCUS (one masked row per image plus the
all-noise row). The store is the bundled toy catalog (24 easy-vqa shapes dressed as products), indexed on first
use.

Photos of one product (the catalog's red circle pendant has three) share a FOCUS group (``--group-by``, default
``auto``: by ``product_id``): FOCUS then separates products, not photos of the same product.

The default question asks about one retrieved image ("What color is the shape in image 2?") in the words the
project's default model was trained on (a small easy-vqa model with a word-level vocabulary: it reads the lab's
prompts, not free text), and the catalog's own label for that image is printed beside the answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here is local
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ANSWER_HINT = "Answer with one word, or none if there is no shape."  # the default model's prompt style


def default_model() -> str:
    """The project's bundled default model; the tiny random test checkpoint (noise answers) until it exists."""
    try:
        from focus_integrations.default_model import default_model_path

        return str(default_model_path())
    except (ImportError, OSError):
        from focus_integrations.testing import tiny_checkpoint

        print("note: no default model installed; using the tiny random test checkpoint", file=sys.stderr)
        return str(tiny_checkpoint("qwen2_5_vl"))


def slot_question(attribute: str, slot: int) -> str:
    if attribute == "color":
        return f"What color is the shape in image {slot}? {ANSWER_HINT}"
    return f"What shape is in image {slot}? {ANSWER_HINT}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search", default="jewellery", help="what to retrieve")
    parser.add_argument("--question", default=None, help="free question (default: --ask about image --slot)")
    parser.add_argument("--ask", choices=["color", "shape"], default="color")
    parser.add_argument(
        "--slot", type=int, default=2, help="which retrieved image the default question is about"
    )
    parser.add_argument("--k", type=int, default=3, help="images to retrieve")
    parser.add_argument("--where", default=None, help="metadata filter as JSON")
    parser.add_argument("--store", default=None, help="store folder (default: a temporary one)")
    parser.add_argument("--model", default=None, help="VLM folder or hub id (default: the bundled model)")
    parser.add_argument("--mode", default="focus", choices=["focus", "vanilla", "vcd"])
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--captions", action="store_true", help="also list the captions in the prompt")
    parser.add_argument(
        "--group-by", default="auto", help="auto (product_id) | a metadata field | none: each photo alone"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.slot <= args.k:
        parser.error("--slot must be between 1 and --k")

    from focus_integrations.langchain import ChatFocus
    from focus_integrations.langchain.retriever import FocusImageRetriever, build_rag_chain
    from focus_integrations.store import ImageStore, bundled_catalog_path

    store_dir = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="focus-rag-")) / "store"
    store = ImageStore(store_dir)
    report = store.add_folder(bundled_catalog_path(), progress=False)  # incremental: a no-op once indexed
    print(f"store {store_dir}: {report.summary()}", file=sys.stderr)

    retriever = FocusImageRetriever(
        store=store, k=args.k, where=json.loads(args.where) if args.where else None
    )
    chat = ChatFocus(
        model=args.model or default_model(), mode=args.mode, max_new_tokens=args.max_new_tokens, seed=0
    )
    group_by = None if args.group_by == "none" else args.group_by
    chain = build_rag_chain(
        retriever, chat, include_captions=args.captions, return_sources=True, group_by=group_by
    )
    question = args.question or slot_question(args.ask, args.slot)
    result = chain.invoke({"search": args.search, "question": question})
    from focus_integrations.groups import metadata_group_keys

    groups = metadata_group_keys([d.metadata for d in result["documents"]], group_by)
    for number, (document, group) in enumerate(zip(result["documents"], groups), start=1):
        meta = document.metadata
        grouped = f", FOCUS group {group}" if group is not None else ""
        print(
            f"  image {number}: {meta['image_id']} {document.page_content} (${meta['price']}, "
            f"distance {meta['distance']:.3f}{grouped})"
        )
    print(f"Q: {question}\nA: {result['answer'].strip()}")
    if args.question is None and len(result["documents"]) >= args.slot:
        truth = result["documents"][args.slot - 1].metadata["colour" if args.ask == "color" else "shape"]
        print(f"catalog: {truth}")
    return 0


if __name__ == "__main__":
    from focus_integrations.console import quiet_libraries

    with quiet_libraries():  # no weight-loading bars or library warnings between the example's lines
        raise SystemExit(main())
