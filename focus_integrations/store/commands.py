"""``focus index`` and ``focus query``: the store on the command line.

    focus index DIR [--store PATH | --chroma-url URL] [--collection NAME] [--embedder SPEC]
                    [--caption-model MODEL] [--no-recursive] [--no-progress] [--prune]
    focus query "question" [--k 4] [--mode focus|vanilla|vcd] [--where JSON] [--model MODEL]
                    [--search TEXT | --like IMAGE] [--store PATH | --chroma-url URL] [--retrieve-only]
                    [--group-by auto|FIELD|none]
    focus catalog DIR    (a copy of the bundled toy catalog: product photos + catalog.json)

``focus query`` retrieves the ``k`` images nearest to the question and answers it with the FOCUS decoder
over those images (``--model``, default: the bundled default model). Retrieved photos of one product (the
same ``product_id``, or document id) form one FOCUS group by default (``--group-by``). It only reads: a store
that does not exist (say, ``--store`` forgotten after ``focus index DIR --store ./store``) is an error naming
the store it looked at, never a new empty store in the home folder. This module imports nothing heavy at
import time, so the ``focus`` command starts fast; errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from focus_integrations.cli_options import (
    add_decoding_arguments,
    add_loading_arguments,
    decoding_options,
    loading_options,
)
from focus_integrations.errors import FocusError, InvalidOptionError


def _text(value: str) -> str:
    from focus_integrations.cli import text_argument

    return text_argument(value)


def add_store_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``index`` and ``query`` on the ``focus`` command's sub-parsers."""
    index = subparsers.add_parser("index", help="index a folder of images into the image store")
    index.add_argument("directory", help="folder of images (sidecars: catalog.json, metadata.jsonl, *.txt)")
    _add_location(index)
    index.add_argument(
        "--embedder",
        default=None,
        help="minilm (default for a new store), minilm:PATH, clip:PATH_OR_ID, siglip:PATH_OR_ID",
    )
    index.add_argument(
        "--caption-model",
        default=None,
        help="caption images without a sidecar caption with this VLM (FOCUS decoder)",
    )
    index.add_argument("--no-recursive", action="store_true", help="only the folder itself, no sub-folders")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.add_argument(
        "--prune", action="store_true", help="delete records of files gone from DIR since an earlier index"
    )
    index.add_argument("--batch-size", type=int, default=32)
    index.set_defaults(func=run_index)

    query = subparsers.add_parser(
        "query", help="answer a question from the images the store retrieves for it"
    )
    query.add_argument("question", type=_text)
    _add_location(query)
    query.add_argument("--k", type=int, default=4, help="number of images to retrieve (default 4)")
    query.add_argument(
        "--where", type=_text, default=None, help='metadata filter as JSON, e.g. \'{"category": "decor"}\''
    )
    query.add_argument(
        "--group-by",
        default="auto",
        metavar="auto|FIELD|none",
        help="FOCUS separates groups: retrieved images sharing this metadata field's value form one group "
        "(default auto: product_id, document_id, doc_id when two retrieved images share one; none: every image "
        "its own group)",
    )
    query.add_argument(
        "--model", default=None, help="VLM hub id or folder (default: the bundled default model)"
    )
    add_decoding_arguments(query, max_new_tokens=64)
    add_loading_arguments(query)
    like_or_search = query.add_mutually_exclusive_group()
    like_or_search.add_argument(
        "--search",
        type=_text,
        default=None,
        metavar="TEXT",
        help="retrieve with TEXT instead of the question",
    )
    like_or_search.add_argument(
        "--like",
        default=None,
        metavar="IMAGE",
        help="retrieve the images most like IMAGE instead of by the question",
    )
    query.add_argument(
        "--retrieve-only", action="store_true", help="list the retrieved images, do not answer"
    )
    query.set_defaults(func=run_query)

    catalog = subparsers.add_parser(
        "catalog", help="copy the bundled toy product catalog (photos + catalog.json) into a folder"
    )
    catalog.add_argument("directory", help="folder to create (or an empty one)")
    catalog.set_defaults(func=run_catalog)


def _add_location(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--store",
        default=None,
        help="store folder (embedded Chroma; default $FOCUS_STORE_PATH or ~/.cache/...)",
    )
    where.add_argument("--chroma-url", default=None, help="Chroma server, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--chroma-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="deadline of each call to the Chroma server (default 30)",
    )
    parser.add_argument("--collection", default=None, help="collection name (default focus-images)")


def _open_store(args: argparse.Namespace, embedder: str | None = None, *, create: bool = True) -> Any:
    from focus_integrations.store.connection import DEFAULT_SERVER_TIMEOUT_S
    from focus_integrations.store.image_store import DEFAULT_COLLECTION, ImageStore

    timeout = getattr(args, "chroma_timeout", None)
    return ImageStore(
        timeout=DEFAULT_SERVER_TIMEOUT_S if timeout is None else timeout,
        path=args.store,
        url=args.chroma_url,
        collection=args.collection or DEFAULT_COLLECTION,
        embedder=embedder,
        batch_size=getattr(args, "batch_size", 32),
        create=create,
    )


def _guarded(run: Any, args: argparse.Namespace) -> int:
    """Run a command, turning the store's third-party failures into one-line FocusErrors."""
    try:
        from chromadb.errors import ChromaError

        from focus_integrations.store.errors import StoreError
    except ImportError as err:
        raise FocusError(
            f"the image store needs the 'chroma' extra (pip install 'focus-integrations[chroma]'): {err}"
        ) from None
    try:
        return run(args)
    except FocusError:
        raise
    except (ChromaError, OSError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StoreError(f"{type(err).__name__}: {message}") from None


def run_index(args: argparse.Namespace) -> int:
    return _guarded(_index, args)


def run_query(args: argparse.Namespace) -> int:
    return _guarded(_query, args)


def run_catalog(args: argparse.Namespace) -> int:
    """Copy the bundled catalog, so a walkthrough can index it and ask about its photos by file name."""
    import shutil
    from pathlib import Path

    from focus_integrations.store.errors import StoreError
    from focus_integrations.store.sidecars import bundled_catalog_path

    target = Path(args.directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise StoreError(f"{target} exists and is not an empty folder: choose a new one")
    try:
        shutil.copytree(bundled_catalog_path(), target, dirs_exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot copy the catalog to {target}: {err}") from None
    photos = sum(1 for path in target.iterdir() if path.suffix.lower() == ".png")
    print(f"copied the bundled catalog ({photos} photos, catalog.json) to {target}")
    return 0


def _index(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise InvalidOptionError("--batch-size must be at least 1")
    store = _open_store(args, embedder=args.embedder)
    captioner = None
    if args.caption_model:
        from focus_integrations.decoder import FocusDecoder
        from focus_integrations.store.captioning import DecoderCaptioner

        captioner = DecoderCaptioner(FocusDecoder.from_pretrained(args.caption_model))
    report = store.add_folder(
        args.directory,
        recursive=not args.no_recursive,
        captioner=captioner,
        progress=False if args.no_progress else None,
        prune=args.prune,
    )
    for path, reason in report.failed:
        print(f"focus: skipped {path}: {reason}", file=sys.stderr)
    for warning in report.warnings:
        print(f"focus: warning: {warning}", file=sys.stderr)
    print(
        f"indexed {args.directory} -> {_where(store)}: {report.summary()}; {store.count()} images in store "
        f"(embedder {store.embedder.name})"
    )
    return 0


def _query(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise InvalidOptionError("--k must be at least 1")
    where = _parse_where(args.where)
    store = _open_store(args, create=False)
    if store.count() == 0:
        from focus_integrations.store.errors import StoreNotFoundError
        from focus_integrations.store.image_store import _INDEX_HINT

        raise StoreNotFoundError(f"the image store {_where(store)} holds no images{_INDEX_HINT}")
    if args.like is not None:
        hits = store.query(image=args.like, k=args.k, where=where)
    else:
        hits = store.query(args.search or args.question, k=args.k, where=where)
    if not hits:
        raise FocusError(f"no images in {_where(store)} match (store holds {store.count()} images)")
    from focus_integrations.groups import metadata_group_keys

    keys = metadata_group_keys(
        [hit.metadata for hit in hits], None if args.group_by == "none" else args.group_by
    )
    for number, (hit, key) in enumerate(zip(hits, keys), start=1):
        group = f", group {key}" if key is not None else ""
        line = f"[{number}] {hit.id}  {hit.caption}  (distance {hit.distance:.3f}{group})  {hit.uri}"
        print(line, file=sys.stdout if args.retrieve_only else sys.stderr)
    if args.retrieve_only:
        return 0
    from focus_integrations.cli import resolve_model
    from focus_integrations.decoder import FocusDecoder

    decoder = FocusDecoder.from_pretrained(resolve_model(args.model), **loading_options(args))
    images = [
        {"type": "image", "image": hit.image()} | ({"group": key} if key is not None else {})
        for hit, key in zip(hits, keys)
    ]
    output = decoder.generate(
        messages=[{"role": "user", "content": [*images, {"type": "text", "text": args.question}]}],
        **decoding_options(args),
    )
    print(output.text)
    return 0


def _parse_where(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        where = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidOptionError(f"--where is not valid JSON: {err}") from None
    if not isinstance(where, dict):
        raise InvalidOptionError('--where must be a JSON object, e.g. \'{"category": "decor"}\'')
    return where


def _where(store: Any) -> str:
    location = store.url or str(store.path)
    return f"{location} [{store.collection_name}]"


def main(argv: list[str] | None = None) -> int:
    """Run ``index`` / ``query`` on their own (``python -m focus_integrations.store.commands ...``)."""
    from focus_integrations.cli import CommandParser, add_verbose_flags, run_command

    parser = CommandParser(prog="focus")
    add_store_commands(parser.add_subparsers(dest="command", required=True))
    add_verbose_flags(parser)
    return run_command(parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
