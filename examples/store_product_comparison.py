"""Product comparison straight from the image store: filter, retrieve, and ask FOCUS vs plain decoding.

    python examples/store_product_comparison.py
    python examples/store_product_comparison.py --category stationery --max-price 20 --ask shape
    python examples/store_product_comparison.py --model /models/Qwen2.5-VL-3B-Instruct \\
        --question "Which of these would you gift, and why?"

Steps: index the bundled toy catalog into an embedded Chroma store (incremental), pick the products that match a
metadata filter (category, price), retrieve the ones nearest to ``--search``, and ask about each retrieved image
in turn, decoding with ``mode="focus"`` and ``mode="vanilla"`` to show what FOCUS changes; the catalog's own
label is printed beside each answer. The default questions use the words the project's default model was
trained on (it reads the lab's prompts, not free text). Offline throughout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ANSWER_HINT = "Answer with one word, or none if there is no shape."


def default_model() -> str:
    try:
        from focus_integrations.default_model import default_model_path

        return str(default_model_path())
    except (ImportError, OSError):
        from focus_integrations.testing import tiny_checkpoint

        print("note: no default model installed; using the tiny random test checkpoint", file=sys.stderr)
        return str(tiny_checkpoint("qwen2_5_vl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search", default="colourful items")
    parser.add_argument("--category", default="decor", help="jewellery, stationery or decor")
    parser.add_argument("--max-price", type=float, default=None)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--ask", choices=["color", "shape"], default="color")
    parser.add_argument("--question", default=None, help="one free question about all the images instead")
    parser.add_argument("--store", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args(argv)

    from focus_integrations import FocusDecoder
    from focus_integrations.store import ImageStore, bundled_catalog_path

    store = ImageStore(
        Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="focus-cmp-")) / "store"
    )
    store.add_folder(bundled_catalog_path(), progress=False)

    conditions: list[dict] = [{"category": args.category}]
    if args.max_price is not None:
        conditions.append({"price": {"$lte": args.max_price}})
    where = conditions[0] if len(conditions) == 1 else {"$and": conditions}
    hits = store.query(args.search, k=args.k, where=where)
    if not hits:
        print(f"no products match {where}", file=sys.stderr)
        return 1
    print("compared products:")
    for number, hit in enumerate(hits, start=1):
        print(
            f"  {number}. {hit.id}  {hit.caption:28s} ${hit.metadata['price']:<6} distance {hit.distance:.3f}"
        )

    decoder = FocusDecoder.from_pretrained(args.model or default_model())
    images = [hit.image() for hit in hits]
    if args.question:
        asks = [(args.question, None)]
    else:
        key = "colour" if args.ask == "color" else "shape"
        asks = [
            (
                f"What color is the shape in image {n}? {ANSWER_HINT}"
                if args.ask == "color"
                else f"What shape is in image {n}? {ANSWER_HINT}",
                hit.metadata[key],
            )
            for n, hit in enumerate(hits, start=1)
        ]
    for question, truth in asks:
        print(f"Q: {question}")
        for mode in ("focus", "vanilla"):
            output = decoder.generate(
                images=images, prompt=question, mode=mode, max_new_tokens=args.max_new_tokens, seed=0
            )
            rows = output.settings.get("n_rows")
            print(
                f"  [{mode:7s}] {output.text.strip()!r}  ({rows} rows, {output.usage.output_tokens} tokens)"
            )
        if truth is not None:
            print(f"  catalog: {truth}")
    return 0


if __name__ == "__main__":
    from focus_integrations.console import quiet_libraries

    with quiet_libraries():  # no weight-loading bars or library warnings between the example's lines
        raise SystemExit(main())
