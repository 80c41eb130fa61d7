"""Image store timings: ingest, unchanged re-ingest, and query latency, embedded and over a loopback server.

    python benchmarks/bench_store.py                      # 200 synthetic images, MiniLM, embedded Chroma
    python benchmarks/bench_store.py --images 1000 --http # also through a `chroma run` server on 127.0.0.1
    python benchmarks/bench_store.py --embedder clip:/models/clip-vit-base-patch32

Prints one JSON object. Images are generated (coloured shapes with varied sizes and captions), so the run
needs no data and no network.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from PIL import Image, ImageDraw  # noqa: E402

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60), "yellow": (230, 210, 30)}
SHAPES = ("circle", "square", "triangle")
QUERIES = ("a red circle", "blue square", "something yellow", "green triangle shape", "round things")


def make_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        colour = list(COLOURS)[index % len(COLOURS)]
        shape = SHAPES[(index // len(COLOURS)) % len(SHAPES)]
        size = 48 + index % 64
        image = Image.new("RGB", (size, size), (245, 245, 245))
        draw = ImageDraw.Draw(image)
        box = (size // 6, size // 6, size - size // 6, size - size // 6)
        if shape == "circle":
            draw.ellipse(box, fill=COLOURS[colour])
        elif shape == "square":
            draw.rectangle(box, fill=COLOURS[colour])
        else:
            draw.polygon([(size // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=COLOURS[colour])
        image.save(folder / f"{colour}_{shape}_{index:05d}.png")


def time_store(store, folder: Path, repeats: int) -> dict:
    started = time.perf_counter()
    report = store.add_folder(folder, progress=False)
    ingest_s = time.perf_counter() - started
    started = time.perf_counter()
    again = store.add_folder(folder, progress=False)
    reingest_s = time.perf_counter() - started
    latencies = []
    for _ in range(repeats):
        for query in QUERIES:
            started = time.perf_counter()
            store.query(query, k=4)
            latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {
        "ingested": len(report.added),
        "ingest_s": round(ingest_s, 3),
        "images_per_s": round(len(report.added) / ingest_s, 1),
        "unchanged_reingest_s": round(reingest_s, 3),
        "unchanged": len(again.skipped_unchanged),
        "query_ms_p50": round(statistics.median(latencies), 1),
        "query_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=4, help="passes over the query set")
    parser.add_argument("--http", action="store_true", help="also measure through a loopback chroma server")
    args = parser.parse_args()

    from focus_integrations.store import ImageStore, load_embedder

    work = Path(tempfile.mkdtemp(prefix="focus-bench-store-"))
    make_images(work / "images", args.images)
    started = time.perf_counter()
    embedder = load_embedder(args.embedder)
    result: dict = {
        "images": args.images,
        "embedder": embedder.name,
        "embedder_load_s": round(time.perf_counter() - started, 2),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    store = ImageStore(work / "embedded", embedder=embedder, batch_size=args.batch_size)
    result["embedded"] = time_store(store, work / "images", args.repeats)
    if args.http:
        from focus_integrations.store.testing import chroma_server

        with chroma_server(work / "served") as url:
            served = ImageStore(url=url, embedder=embedder, batch_size=args.batch_size)
            result["http"] = time_store(served, work / "images", args.repeats)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
