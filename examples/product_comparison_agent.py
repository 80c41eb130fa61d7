"""A LangChain agent that looks up product photos and answers a comparison question with FOCUS.

    python examples/product_comparison_agent.py
    python examples/product_comparison_agent.py --search "notebook" --question "What color is the shape in image 2? ..."
    python examples/product_comparison_agent.py --model Qwen/Qwen2.5-VL-3B-Instruct --model-decides \
        --question "Which pendant is cheaper, the red one or the blue one?"

What happens:

1. ``find_product_images(query)`` searches the catalog: the Chroma image store (``focus_integrations.store``)
   when it is installed, indexed from the bundled toy catalog on first use; otherwise a plain folder scan over
   the same catalog (captions and prices from its ``catalog.json``). It returns a ``ToolMessage`` whose
   content is the products' text (SKU, caption, price) and their photos as image blocks.
2. ``create_agent`` runs the loop: model -> tool -> model. The final answer is decoded with FOCUS over the
   photos the tool returned (one masked row per photo, plus the all-noise row); ``--compare`` runs the same
   agent again (same system prompt, same tool, same middleware) with the answer decoded plainly (vanilla), so
   the decoding rule is the only difference between the two answers.

The project's default model (a small shapes-and-colours VLM) cannot write tool calls or read prices, so by
default a ``retrieve_first`` middleware makes the first step a catalog search, and the answer step shows the
model the retrieved photos and then the question in one user turn (the paper's protocol, and the prompt form
the default model was trained on). The default question is then the default model's own question form. With
a real tool-calling VLM pass ``--model-decides``: the model chooses its tool calls and answers from the whole
conversation, prices included.

Everything runs offline. Without the bundled default model (``focus_integrations.default_model_path()``) the
example falls back to the tiny random Qwen2.5-VL test checkpoint, whose answers are noise but whose run is the
real pipeline.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub: every model here is local
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from langchain.agents import create_agent  # noqa: E402
from langchain.agents.middleware import wrap_model_call  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: E402
from langchain_core.tools import BaseTool, tool  # noqa: E402

from focus_integrations.langchain import ChatFocus  # noqa: E402

CATALOG = Path(__file__).resolve().parents[1] / "focus_integrations" / "assets" / "catalog"
# The default model's question form (it knows colours and shapes, nothing about prices).
DEFAULT_QUESTION = "What color is the shape in image 2? Answer with one word, or none if there is no shape."
DEFAULT_SEARCH = "circle pendant"
# Both agents of --compare get this same system turn: only the decoding rule may differ between them.
SYSTEM_PROMPT = "You compare catalog products. Look products up with find_product_images, then answer."


@dataclass
class Product:
    sku: str
    caption: str
    price: float | None
    path: Path


# ------------------------------------------------------------------------------------------- catalog search


def store_search(store_dir: Path, k: int) -> Callable[[str], list[Product]]:
    """Text search over the Chroma image store (MiniLM caption embeddings), indexed on first use."""
    from focus_integrations.store import ImageStore, bundled_catalog_path

    store = ImageStore(store_dir)
    if store.count() == 0:
        store.add_folder(bundled_catalog_path(), progress=False)

    def search(query: str) -> list[Product]:
        return [
            Product(hit.id, hit.caption, hit.metadata.get("price"), hit.path)
            for hit in store.query(query, k=k)
        ]

    return search


def folder_search(folder: Path, k: int) -> Callable[[str], list[Product]]:
    """Fallback without Chroma: rank the folder's products by words shared with the query."""
    sidecar = folder / "catalog.json"
    entries = json.loads(sidecar.read_text()) if sidecar.is_file() else []
    products = [
        Product(e.get("id", e["file"]), e.get("caption", ""), e.get("price"), folder / e["file"])
        for e in entries
    ]
    if not products:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"})
        products = [Product(p.stem, p.stem.replace("-", " "), None, p) for p in images]

    def search(query: str) -> list[Product]:
        words = set(re.findall(r"[a-z]+", query.lower()))
        ranked = sorted(products, key=lambda p: -len(words & set(p.caption.lower().split())))
        return ranked[:k]

    return search


def make_search(
    use_store: bool, store_dir: Path | None, k: int
) -> tuple[Callable[[str], list[Product]], str]:
    if use_store:
        try:
            directory = store_dir
            if directory is None:
                directory = Path(tempfile.mkdtemp(prefix="focus-catalog-store-"))
                atexit.register(shutil.rmtree, directory, ignore_errors=True)
            return store_search(directory, k), f"Chroma image store at {directory}"
        except ImportError as err:  # the chroma extra is not installed
            print(f"(image store unavailable: {err}; searching the folder instead)", file=sys.stderr)
    return folder_search(CATALOG, k), f"folder {CATALOG}"


def make_tool(search: Callable[[str], list[Product]]) -> BaseTool:
    @tool
    def find_product_images(query: str) -> list[dict[str, Any]]:
        """Find catalog products matching the query. Returns each product's SKU, caption, price and photo."""
        products = search(query)
        lines = [
            f"Image {i}: {p.sku}, {p.caption}, price {p.price if p.price is not None else 'unknown'}"
            for i, p in enumerate(products, 1)
        ]
        blocks: list[dict[str, Any]] = [{"type": "text", "text": "\n".join(lines) or "no products found"}]
        for product in products:
            data = base64.b64encode(product.path.read_bytes()).decode()
            blocks.append({"type": "image", "base64": data, "mime_type": "image/png"})
        return blocks

    return find_product_images


# ------------------------------------------------------------------------------------------- agent


def retrieve_first(search: str | None, show_tool_text: bool) -> Any:
    """Middleware for models that cannot call tools: search first, then answer from the photos.

    First model step: a ``find_product_images`` call with ``search`` (default: the user's question). Answer
    step: one user turn with the retrieved photos, optionally the tool's text, then the question; no tools and
    no system turn.
    """

    @wrap_model_call
    def retrieve_first(request: Any, handler: Callable[[Any], Any]) -> Any:
        question = next(m.text for m in reversed(request.messages) if isinstance(m, HumanMessage))
        results = [m for m in request.messages if isinstance(m, ToolMessage)]
        if not results:
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            call = {"name": "find_product_images", "args": {"query": search or question}, "id": call_id}
            return AIMessage(content="", tool_calls=[call])
        blocks = results[-1].content if isinstance(results[-1].content, list) else []
        photos = [b for b in blocks if isinstance(b, dict) and b.get("type") == "image"]
        texts = (
            [b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
            if show_tool_text
            else []
        )
        prompt = HumanMessage(content=[*photos, {"type": "text", "text": "\n\n".join([*texts, question])}])
        # The answer step has no tools, so the agent's system turn (how to use them) is left out too: the
        # photos and the question alone, the prompt form the default model was trained on.
        return handler(request.override(messages=[prompt], tools=[], system_message=None))

    return retrieve_first


def pick_model(explicit: str | None) -> str:
    if explicit:
        return explicit
    try:
        from focus_integrations.default_model import default_model_path

        return str(default_model_path())
    except Exception as err:  # not built / not installed yet
        from focus_integrations.testing import tiny_checkpoint

        print(f"(default model unavailable: {err}; using the tiny random test checkpoint)", file=sys.stderr)
        return str(tiny_checkpoint("qwen2_5_vl"))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument(
        "--search",
        help=f"catalog search text (default: {DEFAULT_SEARCH!r} with the default "
        "question, else the question)",
    )
    parser.add_argument("--model", help="hub id or folder (default: the bundled default model)")
    parser.add_argument("--k", type=int, default=2, help="products to retrieve")
    parser.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="FOCUS alpha (default: the checkpoint's validated one, else 0.1)",
    )
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--store", type=Path, help="Chroma store folder (default: a fresh temporary one)")
    parser.add_argument("--no-store", action="store_true", help="search the catalog folder, not Chroma")
    parser.add_argument("--model-decides", action="store_true", help="let the model choose its tool calls")
    parser.add_argument(
        "--tool-text", action="store_true", help="show captions and prices in the answer step"
    )
    parser.add_argument("--compare", action="store_true", help="also decode the answer plainly (vanilla)")
    args = parser.parse_args(argv)
    search_text = args.search or (DEFAULT_SEARCH if args.question == DEFAULT_QUESTION else None)

    search, where = make_search(not args.no_store, args.store, args.k)
    llm = ChatFocus(
        model=pick_model(args.model), mode="focus", alpha=args.alpha, max_tokens=args.max_tokens, seed=0
    )
    middleware = [] if args.model_decides else [retrieve_first(search_text, args.tool_text)]
    agent = create_agent(
        llm,
        tools=[make_tool(search)],
        system_prompt=SYSTEM_PROMPT,
        middleware=middleware,
    )
    print(f"model: {llm.model}\ncatalog: {where}\nquestion: {args.question}\n")
    state = agent.invoke({"messages": [HumanMessage(args.question)]})

    tool_calls = [call for m in state["messages"] if isinstance(m, AIMessage) for call in m.tool_calls]
    final = state["messages"][-1]
    focus = final.response_metadata.get("focus", {})
    for message in state["messages"][1:]:
        if isinstance(message, AIMessage) and message.tool_calls:
            print(f"-> tool call: {message.tool_calls[0]['name']}({message.tool_calls[0]['args']})")
        elif isinstance(message, ToolMessage):
            text = next(b["text"] for b in message.content if b["type"] == "text")
            n = sum(1 for b in message.content if b["type"] == "image")
            print(f"<- tool result: {n} photos\n   " + text.replace("\n", "\n   "))
    print(f"\nanswer (FOCUS): {final.text!r}")
    print(f"FOCUS: {focus.get('n_images')} images, {focus.get('n_rows')} rows, alpha {focus.get('alpha')}")
    result = {
        "answer": final.text,
        "tool_calls": tool_calls,
        "n_images": focus.get("n_images"),
        "focus": focus,
    }
    if args.compare:  # the same agent run, with the answer decoded plainly
        plain_agent = create_agent(
            llm.model_copy(update={"mode": "vanilla"}),
            tools=[make_tool(search)],
            system_prompt=SYSTEM_PROMPT,
            middleware=middleware,
        )
        vanilla = plain_agent.invoke({"messages": [HumanMessage(args.question)]})["messages"][-1]
        print(f"answer (vanilla): {vanilla.text!r}")
        result["vanilla_answer"] = vanilla.text
    return result


if __name__ == "__main__":
    from focus_integrations.console import quiet_libraries

    with quiet_libraries():  # no weight-loading bars or library warnings between the example's lines
        main()
