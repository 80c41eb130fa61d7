"""Multimodal RAG with LangChain (LCEL), offline: retrieve catalog images from Chroma, answer with FOCUS.

    python examples/langchain_rag_chain.py
    python examples/langchain_rag_chain.py "what color is the circle?" --k 2 --where '{"category": "jewellery"}'
    python examples/langchain_rag_chain.py --store ./my-store --model /models/Qwen2.5-VL-3B-Instruct "..."

The chain is ``FocusImageRetriever | images_to_message | ChatFocus | StrOutputParser``: the question retrieves
the ``k`` nearest images (MiniLM over captions and metadata, the offline default embedder), all of them go into
one user turn, and ChatFocus decodes the answer with FOCUS (one masked row per image plus the all-noise row).
The store is the bundled toy catalog (24 easy-vqa shapes dressed as products), indexed on first use.
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


def default_model() -> str:
    """The project's bundled default model; the tiny random test checkpoint (noise answers) until it exists."""
    try:
        from focus_integrations.default_model import default_model_path

        return str(default_model_path())
    except (ImportError, OSError):
        from focus_integrations.testing import tiny_checkpoint

        print("note: no default model installed; using the tiny random test checkpoint", file=sys.stderr)
        return str(tiny_checkpoint("qwen2_5_vl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question", nargs="?", default="what color is the circle?")
    parser.add_argument("--k", type=int, default=2, help="images to retrieve")
    parser.add_argument("--where", default=None, help="metadata filter as JSON")
    parser.add_argument("--store", default=None, help="store folder (default: a temporary one)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--model", default=None, help="VLM folder or hub id (default: the bundled model)")
    parser.add_argument("--mode", default="focus", choices=["focus", "vanilla", "vcd"])
    parser.add_argument("--captions", action="store_true", help="also list the captions in the prompt")
    args = parser.parse_args(argv)

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
    chain = build_rag_chain(retriever, chat, include_captions=args.captions, return_sources=True)
    result = chain.invoke(args.question)
    for number, document in enumerate(result["documents"], start=1):
        meta = document.metadata
        print(
            f"  image {number}: {meta['image_id']} {document.page_content} (${meta['price']}, "
            f"distance {meta['distance']:.3f})"
        )
    print(f"Q: {args.question}\nA: {result['answer']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
